"""cuDNN flash attention (GPU) through `jax.nn.dot_product_attention`: causal, the sliding window of local
layers, grouped-query heads natively.

cuDNN has no segment ids: a batch whose rows each hold one document (segment ids constant along the row)
runs the plain causal kernel; a packed batch passes its same-document mask, which jax hands cuDNN as a
[B, 1, T, T] bias (and, in training, a bias gradient of that size: O(T^2) memory per packed batch). Which of
the two runs is decided on the device per batch. cuDNN's flash attention runs in bfloat16 or float16 only,
and its backward pass wants an even sequence length.
"""

import functools

import jax
import jax.numpy as jnp

from cwm_common.errors import CwmError
from cwm_jax.attention.per_device import per_device


def attend(q, k, v, *, q_positions, kv_positions, q_segments, kv_segments, window, block_size):
    if jax.default_backend() != "gpu":
        raise CwmError(f"attention_impl cudnn needs a GPU; jax's backend here is {jax.default_backend()}")
    return attend_with("cudnn", q, k, v, q_segments=q_segments, kv_segments=kv_segments, window=window)


def attend_with(implementation: str, q, k, v, *, q_segments, kv_segments, window):
    """The same call through `jax.nn.dot_product_attention`'s `implementation` ("xla" checks it on a CPU)."""
    if implementation == "cudnn" and q.dtype not in (jnp.bfloat16, jnp.float16):
        raise CwmError(f"attention_impl cudnn runs in bfloat16 or float16; the model's dtype is {q.dtype}")
    if k.shape[1] != q.shape[1]:
        raise ValueError(f"cudnn attention is self-attention only: {q.shape[1]} queries vs {k.shape[1]} keys")
    body = functools.partial(_attend_local, implementation=implementation, window=window)
    return per_device(body, "cudnn", q, k, v, q_segments, kv_segments)


def _attend_local(q, k, v, q_segments, kv_segments, *, implementation, window):
    call = functools.partial(
        jax.nn.dot_product_attention,
        is_causal=True,
        local_window_size=None if window is None else (window - 1, 0),
        implementation=implementation,
    )
    one_document_per_row = (q_segments == q_segments[:, :1]).all() & (kv_segments == kv_segments[:, :1]).all()

    def unpacked(q, k, v):
        return call(q, k, v)

    def packed(q, k, v):
        return call(q, k, v, mask=(q_segments[:, :, None] == kv_segments[:, None, :])[:, None])

    return jax.lax.cond(one_document_per_row, unpacked, packed, q, k, v)
