"""Ring attention: context parallelism over the mesh axis that splits the sequence (`length`).

Each device keeps its slice of the queries and passes its keys and values (with their positions and segment
ids) around the ring with `ppermute`; after n - 1 hops every query has met every key. Each chunk is folded
into an online softmax block by block (blockwise.py's step), key blocks that no query of a block can see are
skipped, and a chunk is recomputed in the backward pass rather than stored. Masks come from the global
positions and segment ids each chunk carries, so packing and sliding windows hold exactly as elsewhere.

Without a split sequence (no mesh, or a sequence axis of size 1) this is `blockwise`. On a TPU the per-chunk
step is the splash kernel instead (ring_splash.py), and unsplit it is splash. Causal work is not balanced:
the device holding the last slice folds n chunks, the first one (zig-zag ordering would even it).
"""

import functools
import math

import jax
import jax.numpy as jnp

from cwm_jax.attention import blockwise, splash
from cwm_jax.attention.layout import attention_layout


def attend(q, k, v, *, q_positions, kv_positions, q_segments, kv_segments, window, block_size):
    kwargs = dict(
        q_positions=q_positions,
        kv_positions=kv_positions,
        q_segments=q_segments,
        kv_segments=kv_segments,
        window=window,
        block_size=block_size,
    )
    if jax.default_backend() == "tpu":
        return splash.attend(q, k, v, **kwargs)
    layout = attention_layout("ring")
    if layout is None or layout.sequence_axis is None:
        return blockwise.attend(q, k, v, **kwargs)
    body = functools.partial(
        _ring, axis=layout.sequence_axis, n=layout.sequence_devices, window=window, block_size=block_size
    )
    specs = (layout.q, layout.kv, layout.kv, *(layout.tokens,) * 4)
    ring = jax.shard_map(body, in_specs=specs, out_specs=layout.q, check_vma=False)
    return ring(q, k, v, q_positions, kv_positions, q_segments, kv_segments)


def _ring(q, k, v, q_positions, kv_positions, q_segments, kv_segments, *, axis, n, window, block_size):
    t = q.shape[1]  # this device's slice
    size = min(block_size, t)
    blocks = math.ceil(t / size)
    q_blocks, qpos_blocks, qseg_blocks = blockwise.query_blocks(q, k.shape[2], q_positions, q_segments, blocks, size)
    perm = [(i, (i + 1) % n) for i in range(n)]

    @jax.checkpoint
    def fold(state, chunk):
        chunk_k, chunk_v, chunk_positions, chunk_segments = chunk
        keys = blockwise.key_blocks(chunk_k, chunk_v, chunk_positions, chunk_segments, blocks, size)

        @jax.checkpoint
        def query_block(_, xs):
            qi, qpos, qseg, st = xs
            return None, blockwise.fold_visible_blocks(st, qi, qpos, qseg, keys, window)

        return jax.lax.scan(query_block, None, (q_blocks, qpos_blocks, qseg_blocks, state))[1]

    def hop(carry, _):
        state, chunk = carry
        state = fold(state, chunk)
        return (state, tuple(jax.lax.ppermute(x, axis, perm) for x in chunk)), None

    empty = blockwise.empty_state(*q_blocks.shape[1:])
    state = tuple(jnp.broadcast_to(x, (blocks, *x.shape)) for x in empty)
    chunk = (k, v, kv_positions, kv_segments)
    (state, chunk), _ = jax.lax.scan(hop, (state, chunk), None, length=n - 1)
    return blockwise.assemble(blockwise.normalize(fold(state, chunk)), t, q.dtype)
