"""A Pallas flash-attention forward for sliding-window layers on the GPU (Pallas interpret mode elsewhere):
causal, window W, packed documents by segment id, grouped-query heads read in place (no repeat).

Grid: (query block, row, query head). A program walks only the key blocks its queries' windows reach, in an
fp32 online softmax. Its gradient is blockwise's (recomputed in XLA): jax's Pallas GPU backward kernels have
no window, so the forward is the kernel's and the backward is portable.
"""

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from cwm_jax.attention import blockwise, kernel_softmax
from cwm_jax.attention.interpreting import interpreting
from cwm_jax.attention.padding import PAD_SEGMENT, gpu_tile, pad_sequence, padded_length

# Query and key tiles: powers of two for the GPU's dot (short sequences use one smaller tile).
TILE = 64


def attend(q, k, v, segments, *, window: int, block_size: int):
    """q [B, T, H, D], k and v [B, T, KV, D], segments [B, T] (self-attention, positions rising by one inside a
    document) -> [B, T, H, D]."""
    return _attend(q, k, v, segments, window, block_size)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _attend(q, k, v, segments, window, block_size):
    return _forward(q, k, v, segments, window)


def _attend_fwd(q, k, v, segments, window, block_size):
    return _forward(q, k, v, segments, window), (q, k, v, segments)


def _attend_bwd(window, block_size, residuals, cotangent):
    q, k, v, segments = residuals
    positions = jnp.broadcast_to(jnp.arange(q.shape[1]), segments.shape)  # by index, as the kernel masks

    def portable(q, k, v):
        return blockwise.attend(
            q,
            k,
            v,
            q_positions=positions,
            kv_positions=positions,
            q_segments=segments,
            kv_segments=segments,
            window=window,
            block_size=block_size,
        )

    _, pullback = jax.vjp(portable, q, k, v)
    return (*pullback(cotangent), None)


_attend.defvjp(_attend_fwd, _attend_bwd)


def _forward(q, k, v, segments, window):
    b, t, heads, dim = q.shape
    group = heads // k.shape[2]
    tile = gpu_tile(t, TILE)
    length = padded_length(t, tile)
    q, k, v = (pad_sequence(x, length) for x in (q, k, v))
    segments = pad_sequence(segments, length, PAD_SEGMENT)
    kernel = functools.partial(_fold_window, tile=tile, window=window, scale=dim**-0.5)
    out = pl.pallas_call(
        kernel,
        grid=(length // tile, b, heads),
        in_specs=[
            pl.BlockSpec((None, tile, None, dim), lambda i, r, h: (r, i, h, 0)),  # the query block
            pl.BlockSpec((None, length, None, dim), lambda i, r, h: (r, 0, h // group, 0)),  # its KV head's keys
            pl.BlockSpec((None, length, None, dim), lambda i, r, h: (r, 0, h // group, 0)),  # and values
            pl.BlockSpec((None, length), lambda i, r, h: (r, 0)),  # the row's segment ids
        ],
        out_specs=pl.BlockSpec((None, tile, None, dim), lambda i, r, h: (r, i, h, 0)),
        out_shape=jax.ShapeDtypeStruct(q.shape, q.dtype),
        interpret=interpreting("gpu"),
        compiler_params=pltriton.CompilerParams(num_warps=4, num_stages=2),  # Triton, not Mosaic GPU
        name="cwm_windowed_flash",
    )(q, k, v, segments)
    return out[:, :t]


def _fold_window(q_ref, k_ref, v_ref, seg_ref, o_ref, *, tile, window, scale):
    block = pl.program_id(0)
    first = block * tile
    q = q_ref[...]
    q_idx = first + jnp.arange(tile)
    q_seg = seg_ref[pl.ds(first, tile)]

    def visit(j, state):
        start = j * tile
        k_idx = start + jnp.arange(tile)
        seen = (k_idx[None, :] <= q_idx[:, None]) & (q_idx[:, None] - k_idx[None, :] < window)
        seen &= seg_ref[pl.ds(start, tile)][None, :] == q_seg[:, None]
        keys, values = k_ref[pl.ds(start, tile), :], v_ref[pl.ds(start, tile), :]
        return kernel_softmax.fold(state, q, keys, values, seen, scale)

    # Key blocks the window reaches: from the one holding first - W + 1 to this query block (causal).
    lowest = jnp.maximum(first - window + 1, 0) // tile
    state = jax.lax.fori_loop(lowest, block + 1, visit, kernel_softmax.empty_state(*q.shape))
    o_ref[...] = kernel_softmax.normalized(state).astype(o_ref.dtype)
