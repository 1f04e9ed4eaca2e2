"""Pallas GPU flash attention (Triton), with causal masking and packed documents by segment id.

Global layers: jax's Pallas `mha` kernel, forward and backward. It is multi-head with one segment-id array per
row, so KV heads are repeated to the query heads and a row's query and key segments must be the same array
(self-attention). It has no sliding window, so local layers run our windowed forward kernel
(windowed_flash.py), whose gradient is blockwise's. On a backend other than GPU both run in Pallas interpret
mode, so the model code that runs on a GPU is the code tested on a CPU.
"""

import functools

import jax.numpy as jnp
from jax.experimental.pallas.ops.gpu import attention as gpu_attention

from cwm_jax.attention import windowed_flash
from cwm_jax.attention.interpreting import interpreting
from cwm_jax.attention.padding import PAD_SEGMENT, gpu_tile, pad_sequence, padded_length
from cwm_jax.attention.per_device import per_device

# Tiles the kernel runs at (its defaults); the sequence is padded to a multiple of the query/key tile.
TILE = 128


def attend(q, k, v, *, q_positions, kv_positions, q_segments, kv_segments, window, block_size):
    t = q.shape[1]
    if k.shape[1] != t:
        raise ValueError(f"pallas_gpu attention is self-attention only: {t} queries vs {k.shape[1]} keys")
    del q_positions, kv_positions, kv_segments  # causal by index, as blockwise; one segment array per row
    if window is not None and window < t:
        local = functools.partial(_windowed_local, window=window, block_size=block_size)
        return per_device(local, "pallas_gpu", q, k, v, q_segments, q_segments)
    return per_device(_attend_local, "pallas_gpu", q, k, v, q_segments, q_segments)


def _windowed_local(q, k, v, q_segments, kv_segments, *, window, block_size):
    del kv_segments  # the same array (self-attention)
    return windowed_flash.attend(q, k, v, q_segments, window=window, block_size=block_size)


def _attend_local(q, k, v, q_segments, kv_segments):
    del kv_segments  # the same array (self-attention)
    b, t, heads, dim = q.shape
    group = heads // k.shape[2]
    length = padded_length(t, gpu_tile(t, TILE))  # a short sequence pads to one tile, a long one to whole tiles
    k, v = (jnp.repeat(x, group, axis=2) for x in (k, v))
    out = _kernel(dim, interpreting("gpu"))(
        pad_sequence(q, length),
        pad_sequence(k, length),
        pad_sequence(v, length),
        pad_sequence(q_segments, length, PAD_SEGMENT),
    )
    return out[:, :t]


def _kernel(dim: int, interpret: bool):
    return functools.partial(gpu_attention.mha, sm_scale=dim**-0.5, causal=True, interpret=interpret)
