"""A Pallas paged-attention kernel for the GPU (Pallas interpret mode elsewhere): one step's queries (a decode
token or a prefill chunk) over each sequence's pages, read in place through its page table. Masks come from the
positions the step view says each entry holds, so ring tables of sliding-window layers, windows, and empty
entries are exact, as in the portable gather; no sequence's cache is ever copied out.

Grid: (sequence, KV head). A program holds its KV head's group of query heads x the step's tokens as rows
(padded to a power of two, at least 16, for the GPU's matrix units) and folds the sequence's pages into an
fp32 online softmax one page at a time, skipping pages none of its queries sees.
"""

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

# Rows of a program: the GPU's dot needs at least 16 and a power of two.
MIN_ROWS = 16


def attend(q, pool_k, pool_v, *, block, table, kv_positions, q_positions, window, block_size):
    del block_size
    if block is not None:  # a stack's layers are contiguous: one flat pool, this layer's pages offset
        pages = pool_k.shape[1]
        pool_k, pool_v = (x.reshape(-1, *x.shape[2:]) for x in (pool_k, pool_v))
        table = table + block * pages
    b, c, heads, dim = q.shape
    kv_heads, page = pool_k.shape[2], pool_k.shape[1]
    group = heads // kv_heads
    rows = group * c
    padded = max(MIN_ROWS, 1 << (rows - 1).bit_length())
    q_rows = q.reshape(b, c, kv_heads, group, dim).transpose(0, 2, 3, 1, 4).reshape(b, kv_heads, rows, dim)
    pos_rows = jnp.broadcast_to(q_positions[:, None, None, :], (b, kv_heads, group, c)).reshape(b, kv_heads, rows)
    q_rows = jnp.pad(q_rows, ((0, 0), (0, 0), (0, padded - rows), (0, 0)))
    pos_rows = jnp.pad(pos_rows, ((0, 0), (0, 0), (0, padded - rows)), constant_values=-1)  # sees nothing
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
        out_shape=jax.ShapeDtypeStruct((b, kv_heads, padded, dim), q.dtype),
        interpret=jax.default_backend() != "gpu",
        name="cwm_paged_attention",
    )(table, kv_positions, q_rows, pos_rows, pool_k, pool_v)
    out = out[:, :, :rows].reshape(b, kv_heads, group, c, dim)
    return out.transpose(0, 3, 1, 2, 4).reshape(b, c, heads, dim)


def _fold_pages(table_ref, kv_pos_ref, q_ref, q_pos_ref, k_ref, v_ref, o_ref, *, page, width, window, scale):
    q = q_ref[...]
    q_pos = q_pos_ref[...]

    def visit(entry, state):
        kv_pos = kv_pos_ref[pl.ds(entry * page, page)]
        visible = kv_pos[None, :] <= q_pos[:, None]  # an empty entry holds a position above every query's
        if window is not None:
            visible &= q_pos[:, None] - kv_pos[None, :] < window

        def fold(state):
            m, denominator, acc = state
            physical = table_ref[entry]
            k, v = k_ref[physical], v_ref[physical]  # [page, head_dim]
            s = jnp.dot(q, k.T, preferred_element_type=jnp.float32) * scale
            s = jnp.where(visible, s, -jnp.inf)
            m_new = jnp.maximum(m, s.max(axis=1))
            m_safe = jnp.where(jnp.isfinite(m_new), m_new, 0.0)
            p = jnp.exp(s - m_safe[:, None])
            correction = jnp.exp(m - m_safe)
            pv = jnp.dot(p.astype(v.dtype), v, preferred_element_type=jnp.float32)
            return m_new, denominator * correction + p.sum(axis=1), acc * correction[:, None] + pv

        return jax.lax.cond(visible.any(), fold, lambda state: state, state)

    rows, dim = q.shape
    empty = (jnp.full((rows,), -jnp.inf, jnp.float32), jnp.zeros((rows,), jnp.float32), jnp.zeros((rows, dim)))
    _, denominator, acc = jax.lax.fori_loop(0, width, visit, empty)
    o_ref[...] = (acc / jnp.where(denominator == 0, 1.0, denominator)[:, None]).astype(o_ref.dtype)
