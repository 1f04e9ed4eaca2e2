"""A Pallas paged-attention kernel for the GPU (Pallas interpret mode elsewhere): one step's queries (a decode
token or a prefill chunk) over each sequence's pages, read in place through its page table. Masks come from the
positions the step view says each entry holds, so ring tables of sliding-window layers, windows, and empty
entries are exact, as in the portable gather; no sequence's cache is ever copied out.

Grid: (sequence, KV head). A program holds its KV head's group of query heads x the step's tokens as rows
(padded to a power of two, at least 16, for the GPU's matrix units) and folds the sequence's pages into an
fp32 online softmax one page at a time, skipping pages none of its rows sees.
"""

import functools

import jax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from cwm_common.errors import CwmError
from cwm_jax.attention import kernel_softmax, paged_rows
from cwm_jax.attention.interpreting import interpreting
from cwm_jax.attention.padding import gpu_tile


def attend(q, pool_k, pool_v, *, block, table, kv_positions, q_positions, window, block_size):
    del block_size
    pool_k, pool_v, table = paged_rows.flat_pools(pool_k, pool_v, block, table)
    page, kv_heads, dim = pool_k.shape[1:]
    if page < 16 and not interpreting("gpu"):
        raise CwmError(f"the GPU paged-attention kernel needs pages of at least 16 positions (page_size is {page})")
    q_rows, pos_rows = paged_rows.query_rows(q, q_positions, kv_heads, gpu_tile)
    b, _, padded, _ = q_rows.shape
    width = table.shape[1]
    kernel = functools.partial(_fold_pages, page=page, width=width, window=window, scale=dim**-0.5)
    out = pl.pallas_call(
        kernel,
        grid=(b, kv_heads),
        in_specs=[
            pl.BlockSpec((None, width), lambda i, h: (i, 0)),  # the sequence's table
            pl.BlockSpec((None, width * page), lambda i, h: (i, 0)),  # the positions its entries hold
            pl.BlockSpec((None, None, padded, dim), lambda i, h: (i, h, 0, 0)),  # its rows of queries
            pl.BlockSpec((None, None, padded), lambda i, h: (i, h, 0)),  # their positions
            pl.BlockSpec((pool_k.shape[0], page, None, dim), lambda i, h: (0, 0, h, 0)),  # K pool, head h
            pl.BlockSpec((pool_v.shape[0], page, None, dim), lambda i, h: (0, 0, h, 0)),  # V pool, head h
        ],
        out_specs=pl.BlockSpec((None, None, padded, dim), lambda i, h: (i, h, 0, 0)),
        out_shape=jax.ShapeDtypeStruct(q_rows.shape, q.dtype),
        interpret=interpreting("gpu"),
        compiler_params=pltriton.CompilerParams(num_warps=4, num_stages=2),  # Triton, not Mosaic GPU
        name="cwm_paged_attention_gpu",
    )(table, kv_positions, q_rows, pos_rows, pool_k, pool_v)
    return paged_rows.from_rows(out, q.shape)


def _fold_pages(table_ref, kv_pos_ref, q_ref, q_pos_ref, k_ref, v_ref, o_ref, *, page, width, window, scale):
    q, q_pos = q_ref[...], q_pos_ref[...]

    def visit(entry, state):
        seen = paged_rows.visible(kv_pos_ref[pl.ds(entry * page, page)], q_pos, window)

        def fold(state):
            physical = table_ref[entry]
            return kernel_softmax.fold(state, q, k_ref[physical], v_ref[physical], seen, scale)

        return jax.lax.cond(paged_rows.any_seen(seen), fold, lambda state: state, state)

    state = jax.lax.fori_loop(0, width, visit, kernel_softmax.empty_state(*q.shape))
    o_ref[...] = kernel_softmax.normalized(state).astype(o_ref.dtype)
