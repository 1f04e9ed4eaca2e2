"""Attention of a step's queries over a paged KV cache, behind one interface:
`attend(q, pool_k, pool_v, *, block, table, kv_positions, q_positions, window, block_size)`.

q [B, C, heads, head_dim]; pool_k and pool_v [pages, page, kv_heads, head_dim] (this layer's pool, the
step's keys already written), or a stack of them [n_blocks, pages, ...] of which this layer's is `block`;
table [B, width] each row's physical pages; kv_positions [B, width * page] the position each gathered entry
holds (INVALID when empty). Returns [B, C, heads, head_dim] in q's dtype.

The portable implementations gather a row's pages into one contiguous cache and run the model's attention
over it: `reference` with an explicit mask, `blockwise` (and `ring`, whose cache is one device's) as an
online softmax over blocks of entries. The kernels read pages in place: paged_tpu.py serves `splash`,
paged_gpu.py `cudnn` and `pallas_gpu`, and `auto` takes the platform's.
"""

import jax
import jax.numpy as jnp

from cwm_jax.attention import auto, blockwise, paged_gpu, paged_tpu, reference


def _gathered(pool, block, table):
    b, width = table.shape
    pages = pool[table] if block is None else pool[block, table]  # one gather, no copy of the stack
    return pages.reshape(b, width * pages.shape[2], *pages.shape[3:])


def gather_reference(q, pool_k, pool_v, *, block, table, kv_positions, q_positions, window, block_size):
    del block_size
    return reference.attend(
        q,
        _gathered(pool_k, block, table),
        _gathered(pool_v, block, table),
        q_positions=q_positions,
        kv_positions=kv_positions,
        q_segments=jnp.ones(q_positions.shape, jnp.int32),
        kv_segments=jnp.ones(kv_positions.shape, jnp.int32),
        window=window,
        block_size=0,
    )


def gather_blockwise(q, pool_k, pool_v, *, block, table, kv_positions, q_positions, window, block_size):
    return blockwise.attend_cache(
        q,
        _gathered(pool_k, block, table),
        _gathered(pool_v, block, table),
        q_positions=q_positions,
        kv_positions=kv_positions,
        window=window,
        block_size=block_size,
    )


def auto_paged(q, pool_k, pool_v, **kwargs):
    """`attention_impl="auto"`: the paged entry of the attention auto picks for this backend."""
    return PAGED_ATTENTION_IMPLS[auto.choice(jax.default_backend())[0]](q, pool_k, pool_v, **kwargs)


PAGED_ATTENTION_IMPLS = {
    "reference": gather_reference,
    "blockwise": gather_blockwise,
    "ring": gather_blockwise,
    "splash": paged_tpu.attend,
    "cudnn": paged_gpu.attend,
    "pallas_gpu": paged_gpu.attend,
    "auto": auto_paged,
}
