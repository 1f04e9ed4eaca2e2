"""Reading and writing Hugging Face safetensors directories (one file or a sharded index), lazily."""

import json
import os
from collections.abc import Iterable

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from cwm_common.errors import CwmError

SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"
_METADATA = {"format": "pt"}  # transformers refuses safetensors files without a format tag


class SafetensorsReader:
    """Tensor names, shapes and values of a directory, opening each shard once and reading on demand."""

    def __init__(self, directory: str):
        self.directory = directory
        self._file_of: dict[str, str] = {}  # tensor name -> its file, relative to the directory
        index_path = os.path.join(directory, INDEX)
        if os.path.exists(index_path):
            try:
                with open(index_path) as f:
                    weight_map = json.load(f)["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise CwmError(f"{index_path}: not a safetensors index with a weight_map ({e})") from None
            for name, shard in weight_map.items():
                self._file_of[name] = shard
        elif os.path.exists(os.path.join(directory, SINGLE)):
            self._file_of = {name: SINGLE for name in self._open(SINGLE).keys()}
        else:
            raise CwmError(f"{directory}: no {SINGLE} or {INDEX} (only safetensors checkpoints are read)")
        self._handles: dict[str, object] = {}

    def _open(self, file: str):
        path = os.path.join(self.directory, file)
        if not os.path.exists(path):
            raise CwmError(f"{path}: safetensors shard listed in the index is missing")
        try:
            return safe_open(path, framework="np")
        except Exception as e:  # safetensors raises its own error types for corrupt headers
            raise CwmError(f"{path}: unreadable safetensors file ({e})") from None

    def _handle(self, name: str):
        file = self._file_of[name]
        if file not in self._handles:
            self._handles[file] = self._open(file)
        return self._handles[file]

    def names(self) -> set[str]:
        return set(self._file_of)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._handle(name).get_slice(name).get_shape())

    def get(self, name: str) -> np.ndarray:
        return self._handle(name).get_tensor(name)

    def read_slice(self, name: str, box: tuple[slice, ...]) -> np.ndarray:
        """Only the elements of `box` (a slice per dimension) of a tensor, read from the file."""
        return self._handle(name).get_slice(name)[box]


def write_safetensors_dir(directory: str, tensors: Iterable[tuple[str, np.ndarray]], max_shard_bytes: int) -> list[str]:
    """Writes (name, tensor) pairs as one file, or as numbered shards plus an index when they exceed
    max_shard_bytes. Each shard is written as soon as it is full, so only one shard is held at a time."""
    os.makedirs(directory, exist_ok=True)
    written: list[tuple[str, list[str]]] = []  # (temporary file, its tensor names) of each full shard
    shard: dict[str, np.ndarray] = {}
    size = total = 0
    for name, array in tensors:
        if shard and size + array.nbytes > max_shard_bytes:
            written.append(_write_partial(directory, len(written), shard))
            shard, size = {}, 0
        shard[name] = array
        size += array.nbytes
        total += array.nbytes
    if not written:
        save_file(shard, os.path.join(directory, SINGLE), metadata=_METADATA)
        return [SINGLE]
    written.append(_write_partial(directory, len(written), shard))
    return _name_shards(directory, written, total)


def _write_partial(directory: str, k: int, shard: dict[str, np.ndarray]) -> tuple[str, list[str]]:
    # Final shard names hold the shard count, known only at the end.
    file = f"model-{k + 1:05d}.safetensors.partial"
    save_file(shard, os.path.join(directory, file), metadata=_METADATA)
    return file, list(shard)


def _name_shards(directory: str, written: list[tuple[str, list[str]]], total: int) -> list[str]:
    """Renames the shards to model-K-of-N.safetensors and writes the index naming each tensor's shard."""
    files = [f"model-{k + 1:05d}-of-{len(written):05d}.safetensors" for k in range(len(written))]
    weight_map = {}
    for file, (partial, names) in zip(files, written, strict=True):
        os.replace(os.path.join(directory, partial), os.path.join(directory, file))
        weight_map.update({name: file for name in names})
    with open(os.path.join(directory, INDEX), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return files
