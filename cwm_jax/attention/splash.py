"""Pallas splash attention (TPU), with CWM's masks: causal, the sliding window of local layers, packed
documents by segment id, grouped-query heads (splash_kernels.py).

On a backend other than TPU the kernel runs in Pallas's TPU interpret mode, so the model code that runs on a
TPU is the code tested on a CPU. Under a mesh each device runs it on its own rows and heads; when the mesh
splits the sequence, it is ring attention's per-chunk step (ring_splash.py).
"""

import functools

from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as splash_kernel

from cwm_jax.attention import ring_splash, splash_kernels
from cwm_jax.attention.interpreting import interpreting
from cwm_jax.attention.layout import attention_layout
from cwm_jax.attention.per_device import per_device


def attend(q, k, v, *, q_positions, kv_positions, q_segments, kv_segments, window, block_size):
    del q_positions, kv_positions  # masks are by index (splash_kernels.py)
    if k.shape[1] != q.shape[1]:
        raise ValueError(f"splash attention is self-attention only: {q.shape[1]} queries vs {k.shape[1]} keys")
    layout = attention_layout("splash")
    if layout is not None and layout.sequence_axis is not None:
        return ring_splash.attend(q, k, v, q_segments, kv_segments, layout=layout, window=window, block_size=block_size)
    body = functools.partial(_attend_local, window=window, block_size=block_size)
    return per_device(body, "splash", q, k, v, q_segments, kv_segments)


def _attend_local(q, k, v, q_segments, kv_segments, *, window, block_size):
    t, group = q.shape[1], q.shape[2] // k.shape[2]
    block, length = splash_kernels.block_and_length(t, block_size)
    interpret = interpreting("tpu")
    kernel = splash_kernels.kernel(length, t, window, 0, group, block, "tpu" if interpret else None, False)
    qs, ks, vs, q_seg, kv_seg = splash_kernels.to_kernel_layout(q, k, v, q_segments, kv_segments, length)

    def one_row(qr, kr, vr, q_row, kv_row):  # one batch row, every KV head: [KV, G, S, D], [KV, S, D], [KV, S, D]
        segments = splash_kernel.SegmentIds(q=q_row, kv=kv_row)
        return splash_kernels.over(lambda qh, kh, vh: kernel(qh, kh, vh, segments), interpret, qr, kr, vr)

    out = splash_kernels.over(one_row, interpret, qs, ks, vs, q_seg, kv_seg)
    return splash_kernels.from_kernel_layout(out, t, q.dtype)
