"""A Pallas paged-attention kernel for the TPU (Pallas's TPU interpret mode elsewhere): the same attention as
paged_gpu.py (a step's queries over each sequence's pages, masked by the positions the step view gives, so
ring tables and windows are exact), in the TPU's terms: the pools stay in HBM, the page tables are prefetched
into scalar memory, and each page a row needs is copied by DMA into VMEM and folded into an fp32 online
softmax. Pages none of a program's rows sees are neither copied nor computed.

(jax's own TPU kernels did not fit: `paged_attention` wants head-major pools, one query and no window;
`ragged_paged_attention` wants K and V interleaved in one pool and does not run in the TPU interpreter at the
pinned jax, so it could not be checked here.)
"""

import functools
from typing import Any

import jax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from cwm_jax.attention import kernel_softmax, paged_rows
from cwm_jax.attention.interpreting import interpreting


def _sublane_rows(rows: int) -> int:
    return 16 * -(-rows // 16)  # whole (16, 128) tiles for bf16


def attend(q, pool_k, pool_v, *, block, table, kv_positions, q_positions, window, block_size):
    del block_size
    pool_k, pool_v, table = paged_rows.flat_pools(pool_k, pool_v, block, table)
    page, kv_heads, dim = pool_k.shape[1:]
    q_rows, pos_rows = paged_rows.query_rows(q, q_positions, kv_heads, _sublane_rows)
    b, _, padded, _ = q_rows.shape
    width = table.shape[1]
    kernel = functools.partial(_fold_pages, page=page, width=width, window=window, scale=dim**-0.5)
    spec = pltpu.PrefetchScalarGridSpec(
        num_scalar_prefetch=1,  # the page tables
        grid=(b, kv_heads),
        in_specs=[
            # Vectors ride as [1, n] blocks: a block's last two dims must be whole (8, 128) tiles or whole dims.
            pl.BlockSpec((None, 1, width * page), lambda i, h, tables: (i, 0, 0)),  # the positions entries hold
            pl.BlockSpec((None, None, padded, dim), lambda i, h, tables: (i, h, 0, 0)),  # the rows of queries
            pl.BlockSpec((None, None, 1, padded), lambda i, h, tables: (i, h, 0, 0)),  # their positions
            pl.BlockSpec(memory_space=pl.ANY),  # K pool (HBM)
            pl.BlockSpec(memory_space=pl.ANY),  # V pool (HBM)
        ],
        out_specs=pl.BlockSpec((None, None, padded, dim), lambda i, h, tables: (i, h, 0, 0)),
        scratch_shapes=[
            pltpu.VMEM((page, dim), pool_k.dtype),
            pltpu.VMEM((page, dim), pool_v.dtype),
            pltpu.SemaphoreType.DMA((2,)),
        ],
    )
    interpret: Any = pltpu.InterpretParams() if interpreting("tpu") else False
    out = pl.pallas_call(
        kernel,
        grid_spec=spec,
        out_shape=jax.ShapeDtypeStruct(q_rows.shape, q.dtype),
        interpret=interpret,
        name="cwm_paged_attention_tpu",
    )(table, kv_positions[:, None], q_rows, pos_rows[:, :, None], pool_k, pool_v)
    return paged_rows.from_rows(out, q.shape)


def _fold_pages(
    table_ref, kv_pos_ref, q_ref, q_pos_ref, k_hbm, v_hbm, o_ref, k_page, v_page, copies, *, page, width, window, scale
):
    row, head = pl.program_id(0), pl.program_id(1)
    q, q_pos = q_ref[...], q_pos_ref[0]

    def visit(entry, state):
        seen = paged_rows.visible(kv_pos_ref[0, pl.ds(entry * page, page)], q_pos, window)

        def fold(state):
            physical = table_ref[row, entry]
            k_copy = pltpu.make_async_copy(k_hbm.at[physical, :, head], k_page, copies.at[0])
            v_copy = pltpu.make_async_copy(v_hbm.at[physical, :, head], v_page, copies.at[1])
            k_copy.start()
            v_copy.start()
            k_copy.wait()
            v_copy.wait()
            return kernel_softmax.fold(state, q, k_page[...], v_page[...], seen, scale)

        return jax.lax.cond(paged_rows.any_seen(seen), fold, lambda state: state, state)

    state = jax.lax.fori_loop(0, width, visit, kernel_softmax.empty_state(*q.shape))
    o_ref[...] = kernel_softmax.normalized(state).astype(o_ref.dtype)
