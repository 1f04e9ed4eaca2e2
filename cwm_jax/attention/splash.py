"""Pallas splash attention (TPU), with CWM's masks: causal, the sliding window of local layers, packed
documents by segment id, grouped-query heads.

Each KV head runs the multi-query kernel over its group of query heads. Masks are by index, so positions
must rise by one inside a document, as packing makes them (the same contract as `blockwise`). The sequence
is padded to the block size; padding is a document of its own. On a backend other than TPU the kernel runs
in Pallas's TPU interpret mode, so the model code that runs on a TPU is the code tested on a CPU.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.experimental.pallas import tpu as pltpu
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as splash_kernel
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as splash_mask

from cwm_jax.attention.interpreting import interpreting
from cwm_jax.attention.padding import PAD_SEGMENT, pad_sequence, padded_length
from cwm_jax.attention.per_device import per_device

# The TPU's lane width: kernel blocks are multiples of it.
LANES = 128


def attend(q, k, v, *, q_positions, kv_positions, q_segments, kv_segments, window, block_size):
    del q_positions, kv_positions  # masks are by index (see above)
    if k.shape[1] != q.shape[1]:
        raise ValueError(f"splash attention is self-attention only: {q.shape[1]} queries vs {k.shape[1]} keys")
    body = functools.partial(_attend_local, window=window, block_size=block_size)
    return per_device(body, "splash", q, k, v, q_segments, kv_segments)


def _attend_local(q, k, v, q_segments, kv_segments, *, window, block_size):
    b, t, heads, dim = q.shape
    kv_heads = k.shape[2]
    group = heads // kv_heads
    block = min(padded_length(block_size, LANES), padded_length(t, LANES))
    length = padded_length(t, block)
    interpret = interpreting("tpu")
    kernel = _kernel(length, window, group, block, interpret)
    # The kernel does not scale scores; scaling q in fp32 first keeps one rounding.
    scaled = (q.astype(jnp.float32) * dim**-0.5).astype(q.dtype)
    qs = pad_sequence(scaled, length).reshape(b, length, kv_heads, group, dim).transpose(0, 2, 3, 1, 4)
    ks, vs = (pad_sequence(x, length).transpose(0, 2, 1, 3) for x in (k, v))  # [B, KV, S, D]
    segments = splash_kernel.SegmentIds(
        q=pad_sequence(q_segments, length, PAD_SEGMENT), kv=pad_sequence(kv_segments, length, PAD_SEGMENT)
    )

    def one_row(qr, kr, vr, seg):  # one batch row, every KV head: [KV, G, S, D], [KV, S, D], [KV, S, D]
        return _over(lambda qh, kh, vh: kernel(qh, kh, vh, seg), interpret, qr, kr, vr)

    out = _over(one_row, interpret, qs, ks, vs, segments)  # [B, KV, G, S, D]
    return out.transpose(0, 3, 1, 2, 4).reshape(b, length, heads, dim)[:, :t].astype(q.dtype)


def _over(fn, interpret: bool, *xs):
    """fn mapped over the leading axis: vmap on a TPU (one kernel launch); a loop when interpreting, whose
    TPU interpreter does not batch a kernel's grid."""
    if not interpret:
        return jax.vmap(fn)(*xs)
    return jax.lax.map(lambda args: fn(*args), xs)


@functools.lru_cache(maxsize=64)
def _kernel(length: int, window: int | None, group: int, block: int, interpret: bool):
    """The kernel for one KV head's group of query heads over `length` tokens (its mask tables are built in
    numpy once per shape)."""
    shape = (length, length)
    mask = splash_mask.CausalMask(shape) if window is None else splash_mask.LocalMask(shape, (window - 1, 0), 0)
    sizes = splash_kernel.BlockSizes(
        block_q=block,
        block_kv=block,
        block_kv_compute=block,
        block_q_dkv=block,
        block_kv_dkv=block,
        block_kv_dkv_compute=block,
        block_q_dq=block,
        block_kv_dq=block,
    )
    # Handed on to pallas_call, which takes TPU interpret mode's parameters (the kernel's annotation says bool).
    mode: Any = pltpu.InterpretParams() if interpret else False
    with jax.ensure_compile_time_eval():  # concrete tables, safe to reuse from later traces
        return splash_kernel.make_splash_mqa(
            splash_mask.MultiHeadMask([mask] * group),
            block_sizes=sizes,
            head_shards=1,
            q_seq_shards=1,
            interpret=mode,
        )
