"""Which rows of the RL batch each process owns in a multi-process run: the rows its devices hold in the
learner's batch. A process generates, runs the tools of and grades only those (nothing graded twice, nothing
lost); cwm_jax.train.batches.global_batch assembles the learner's batch from every process's rows."""

import collections

import jax
import numpy as np
from jax.experimental import multihost_utils

from cwm_common.errors import CwmError


def owned_rows(rows: int, group_size: int, sharding: jax.sharding.Sharding) -> range:
    """This process's rows of a [rows, ...] batch laid out by `sharding`: whole groups, in one span."""
    indices = sharding.devices_indices_map((rows,))
    held: dict[int, set[int]] = collections.defaultdict(set)
    for device in filter(indices.__contains__, jax.devices()):
        held[device.process_index].update(range(*indices[device][0].indices(rows)))
    if sum(len(r) for r in held.values()) != rows:
        raise CwmError(
            f"mesh: the batch's {rows} rows are replicated across processes; put the batch axes (data, fsdp) "
            "across processes so that each process holds rows of its own"
        )
    mine = sorted(held[jax.process_index()])
    span = range(mine[0], mine[-1] + 1)
    if len(mine) != len(span) or span.start % group_size or span.stop % group_size:
        raise CwmError(
            f"rl.group_size: this process holds rows {mine[0]}-{mine[-1]} of the batch, which is not whole "
            f"groups of {group_size} in one span; change rl.prompts_per_step or the mesh's batch axes"
        )
    return span


def every_process(values: np.ndarray) -> np.ndarray:
    """Every process's `values` (same shape on each) concatenated along the first axis, in process order."""
    if jax.process_count() == 1:
        return values
    # Gathered as raw bytes: JAX would narrow float64 to float32 and the metrics must not depend on the
    # process count.
    raw = np.ascontiguousarray(values).view(np.uint8).reshape(len(values), -1)
    gathered = np.asarray(multihost_utils.process_allgather(raw, tiled=True))
    return gathered.view(values.dtype).reshape(-1, *values.shape[1:])
