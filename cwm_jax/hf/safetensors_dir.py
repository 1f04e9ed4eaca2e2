"""Reading and writing Hugging Face safetensors directories (one file or a sharded index), lazily."""

import json
import os

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from cwm_common.errors import CwmError

SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"


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


def write_safetensors_dir(directory: str, tensors: dict[str, np.ndarray], max_shard_bytes: int) -> list[str]:
    """Writes tensors as one file, or as numbered shards plus an index when they exceed max_shard_bytes."""
    os.makedirs(directory, exist_ok=True)
    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for name, array in tensors.items():
        if shards[-1] and size + array.nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = array
        size += array.nbytes
    metadata = {"format": "pt"}  # transformers refuses safetensors files without a format tag
    if len(shards) == 1:
        save_file(shards[0], os.path.join(directory, SINGLE), metadata=metadata)
        return [SINGLE]
    files = [f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors" for k in range(len(shards))]
    weight_map = {}
    for file, shard in zip(files, shards, strict=True):
        save_file(shard, os.path.join(directory, file), metadata=metadata)
        weight_map.update({name: file for name in shard})
    total = sum(a.nbytes for a in tensors.values())
    with open(os.path.join(directory, INDEX), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return files
