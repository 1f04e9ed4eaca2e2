"""Batches whose content does not depend on the number of processes, so a run can resume on another.

The records are cut into `virtual_shards` fixed shards, each with its own pipeline (build_dataset: shuffle,
documents, packing) making B / V rows per step. Step s's global batch is the s-th rows of every shard,
whatever the process count. Process i of P owns shards i, i + P, ..., and its iterator state is its shards'
positions. Every process saves its own state file; a restore on P' processes reads all of them and each
process takes the shards it now owns, so the step after a resume sees the same rows as without the change
(their order inside the global batch follows the process layout).
"""

import dataclasses
import json
import pathlib

import numpy as np

from cwm_common.config_rules import config_error
from cwm_common.errors import CwmError
from cwm_data.pipeline.input_pipeline import PipelineConfig, build_dataset


def state_files(directory) -> list[pathlib.Path]:
    """A checkpoint's data-position files, one per process that saved it (Grain's checkpoint handler names
    them process_I-of-N.json)."""
    files = sorted(pathlib.Path(directory).glob("process_*-of-*.json"))
    if not files:
        raise CwmError(f"{directory}: no data state files (process_*-of-*.json)")
    return files


class ElasticBatches:
    def __init__(self, cfg: PipelineConfig, virtual_shards: int):
        shards, processes = virtual_shards, cfg.process_count
        if shards % processes:
            raise config_error(
                "data.virtual_shards", f"({shards}) must be a multiple of the process count ({processes})"
            )
        rows, remainder = divmod(cfg.batch_size * processes, shards)
        if remainder or rows == 0:
            raise config_error(
                "data.virtual_shards", f"({shards}) must divide the global batch ({cfg.batch_size * processes} rows)"
            )
        self.virtual_shards = shards
        # This process's shards: i, i + P, ...
        self.iterators = {
            v: iter(build_dataset(dataclasses.replace(cfg, process_index=v, process_count=shards, batch_size=rows)))
            for v in range(cfg.process_index, shards, processes)
        }

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        parts = [next(iterator) for iterator in self.iterators.values()]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    # The Grain checkpoint handler's protocol for iterators that are not Grain's own.
    def get_state(self) -> bytes:
        return json.dumps(
            {
                "virtual_shards": self.virtual_shards,
                "shards": {str(v): it.get_state() for v, it in self.iterators.items()},
            }
        ).encode()

    def set_state(self, state: bytes):
        """From a state that holds (at least) this process's shards: its own, or merged_state's."""
        saved = json.loads(state)
        if saved["virtual_shards"] != self.virtual_shards:
            raise CwmError(
                f"data.virtual_shards is {self.virtual_shards} but the checkpoint has "
                f"{saved['virtual_shards']}: the shards would hold other records"
            )
        missing = [v for v in self.iterators if str(v) not in saved["shards"]]
        if missing:
            raise CwmError(
                f"the checkpoint's data state lacks virtual shard {missing[0]} (a process's state file is missing)"
            )
        for v, iterator in self.iterators.items():
            iterator.set_state(saved["shards"][str(v)])

    def set_state_from_files(self, directory):
        """Restore from a checkpoint's data directory, saved by any number of processes."""
        self.set_state(merged_state(directory))
        self.start_prefetch()

    def start_prefetch(self):
        for iterator in self.iterators.values():
            if hasattr(iterator, "start_prefetch"):
                iterator.start_prefetch()


def merged_state(directory) -> bytes:
    """The union of every process's saved ElasticBatches state in a checkpoint's data directory."""
    shards, sizes = {}, set()
    for path in state_files(directory):
        saved = json.loads(path.read_text())
        if "virtual_shards" not in saved:
            raise CwmError(f"{path}: not an elastic data state (data.virtual_shards was 0 when it was saved)")
        sizes.add(saved["virtual_shards"])
        shards.update(saved["shards"])
    if len(sizes) != 1:
        raise CwmError(f"{directory}: state files disagree on virtual_shards ({sorted(sizes)})")
    return json.dumps({"virtual_shards": sizes.pop(), "shards": shards}).encode()
