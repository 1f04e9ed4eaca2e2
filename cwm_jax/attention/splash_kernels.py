"""The splash kernels CWM's attention runs, and the layout they take (TPU; Pallas's TPU interpret mode
elsewhere).

One multi-query kernel per KV head, over that head's group of query heads. Masks are by index, so positions
must rise by one inside a document, as packing makes them (the same contract as `blockwise`). The sequence
is padded to the block size; padding is a document of its own.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.experimental.pallas import tpu as pltpu
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as splash_kernel
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as splash_mask

from cwm_jax.attention.padding import PAD_SEGMENT, pad_sequence, padded_length

# The TPU's lane width: kernel blocks are multiples of it.
LANES = 128


def block_and_length(t: int, block_size: int) -> tuple[int, int]:
    """The kernel's block for t tokens, and t padded to it."""
    block = min(padded_length(block_size, LANES), padded_length(t, LANES))
    return block, padded_length(t, block)


def to_kernel_layout(q, k, v, q_segments, kv_segments, length: int):
    """q [B, t, H, D] scaled and as [B, KV, G, length, D]; k, v as [B, KV, length, D]; segments [B, length].
    The kernel does not scale scores; scaling q in fp32 first keeps one rounding."""
    b, _, heads, dim = q.shape
    kv_heads = k.shape[2]
    scaled = (q.astype(jnp.float32) * dim**-0.5).astype(q.dtype)
    qs = pad_sequence(scaled, length).reshape(b, length, kv_heads, heads // kv_heads, dim).transpose(0, 2, 3, 1, 4)
    ks, vs = (pad_sequence(x, length).transpose(0, 2, 1, 3) for x in (k, v))
    return qs, ks, vs, pad_sequence(q_segments, length, PAD_SEGMENT), pad_sequence(kv_segments, length, PAD_SEGMENT)


def from_kernel_layout(out, t: int, dtype):
    """[B, KV, G, length, D] -> [B, t, H, D]."""
    b, kv_heads, group, length, dim = out.shape
    return out.transpose(0, 3, 1, 2, 4).reshape(b, length, kv_heads * group, dim)[:, :t].astype(dtype)


def over(fn, loop: bool, *xs):
    """fn mapped over the leading axis: vmap (one kernel launch on a TPU), or a loop for the TPU interpreter,
    which does not batch a kernel's grid."""
    if not loop:
        return jax.vmap(fn)(*xs)
    return jax.lax.map(lambda args: fn(*args), xs)


def hop_mask(length: int, t: int, window: int | None, hop: int):
    """The mask between queries and the keys `hop` slices of t tokens before them (0: the same slice)."""
    shape = (length, length)
    if hop == 0:
        return splash_mask.CausalMask(shape) if window is None else splash_mask.LocalMask(shape, (window - 1, 0), 0)
    # Every earlier key is causal; the window, if any, counts from the query's global index, hop * t further on.
    return splash_mask.FullMask(shape) if window is None else splash_mask.LocalMask(shape, (window - 1, None), hop * t)


# How a kernel runs: compiled by Mosaic on a TPU; elsewhere in the TPU interpreter, or in Pallas's generic
# interpreter, which runs the same kernel body without simulating the TPU's devices (see ring_splash.py).
INTERPRETERS = (None, "tpu", "generic")


@functools.lru_cache(maxsize=128)
def kernel(
    length: int, t: int, window: int | None, hop: int, group: int, block: int, interpreter: str | None, residuals: bool
):
    """The kernel for one KV head's group of query heads (its mask tables built in numpy once per shape);
    with residuals it also returns each query's log-sum-exp. `interpreter` is one of INTERPRETERS."""
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
    mode: Any = {None: False, "tpu": pltpu.InterpretParams(), "generic": True}[interpreter]
    with jax.ensure_compile_time_eval():  # concrete tables, safe to reuse from later traces
        return splash_kernel.make_splash_mqa(
            splash_mask.MultiHeadMask([hop_mask(length, t, window, hop)] * group),
            block_sizes=sizes,
            head_shards=1,
            q_seq_shards=1,
            save_residuals=residuals,
            interpret=mode,
        )
