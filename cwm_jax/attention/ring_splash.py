"""Ring attention whose per-chunk step is the splash kernel (TPU; Pallas interpret mode elsewhere).

Device i holds query slice i, and at hop h the keys of slice i - h, so the mask between them is static for
the hop: causal (or the window) on the diagonal, every key (or the window shifted by h slices) below it, and
nothing above it, which a device with i < h skips. Each hop's kernel returns its outputs with their
log-sum-exp, merged into the running result. The backward pass sends the chunks round again, gathering their
gradients, and each hop runs splash's backward kernels against the final output and log-sum-exp, so a
chunk's probabilities are the global ones (flash attention's backward). Local layers stop after the hops
their window reaches. Masks are by index, as in splash.py: slice i holds global tokens i*t .. i*t + t - 1.

Off TPU the kernels run in Pallas's generic interpreter: the TPU interpreter simulates the mesh's devices
meeting at barriers around each kernel, and under this shard_map on a 2-core host it never returns.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as splash_kernel

from cwm_jax.attention import splash_kernels
from cwm_jax.attention.interpreting import interpreting
from cwm_jax.attention.layout import AttentionLayout

# Rows and heads go to the kernels under vmap: a TPU and Pallas's generic interpreter batch a kernel's grid.
_LOOP = False


class Ring(NamedTuple):
    axis: str
    devices: int
    hops: int  # hops that reach some key: all devices', or the window's
    t: int  # tokens per slice
    length: int  # t padded to the kernel's block
    block: int
    window: int | None
    group: int
    interpret: bool  # off TPU: in Pallas's generic interpreter (see above)


def hops_reached(t: int, devices: int, window: int | None) -> int:
    """Hops whose keys some query sees: with a window W, slice h is seen while h*t - (W - 1) <= t - 1."""
    return devices if window is None else min(devices, (t + window - 2) // t + 1)


def attend(q, k, v, q_segments, kv_segments, *, layout: AttentionLayout, window, block_size):
    assert layout.sequence_axis is not None
    t = q.shape[1] // layout.sequence_devices
    block, length = splash_kernels.block_and_length(t, block_size)
    ring = Ring(
        layout.sequence_axis,
        layout.sequence_devices,
        hops_reached(t, layout.sequence_devices, window),
        t,
        length,
        block,
        window,
        q.shape[2] // k.shape[2],
        interpreting("tpu"),
    )

    def on_device(q, k, v, q_segments, kv_segments):
        qs, ks, vs, q_seg, kv_seg = splash_kernels.to_kernel_layout(q, k, v, q_segments, kv_segments, length)
        return splash_kernels.from_kernel_layout(_ring(ring, qs, ks, vs, q_seg, kv_seg), t, q.dtype)

    specs = (layout.q, layout.kv, layout.kv, layout.tokens, layout.tokens)
    sharded = jax.shard_map(on_device, in_specs=specs, out_specs=layout.q, check_vma=False)
    return sharded(q, k, v, q_segments, kv_segments)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _ring(ring: Ring, qs, ks, vs, q_seg, kv_seg):
    return _forward(ring, qs, ks, vs, q_seg, kv_seg)[0]


def _forward(ring: Ring, qs, ks, vs, q_seg, kv_seg):
    me = jax.lax.axis_index(ring.axis)
    chunk = (ks, vs, kv_seg)
    out, lse = _merge(*_nothing_seen(qs, q_seg, chunk), *_hop_forward(ring, 0, qs, q_seg, chunk))
    for hop in range(1, ring.hops):
        chunk = _shift(chunk, ring, 1)
        seen = functools.partial(_hop_forward, ring, hop)
        out_h, lse_h = jax.lax.cond(me >= hop, seen, _nothing_seen, qs, q_seg, chunk)
        out, lse = _merge(out, lse, out_h, lse_h)
    # A query that saw no key (possible only if its segment ids differ from its keys') has output 0, and an
    # lse of 0 keeps its backward probabilities exp(mask_value - 0) = 0.
    lse = jnp.where(jnp.isneginf(lse), 0.0, lse)
    return out.astype(qs.dtype), (qs, ks, vs, q_seg, kv_seg, out, lse)


def _backward(ring: Ring, residuals, d_out):
    qs, ks, vs, q_seg, kv_seg, out, lse = residuals
    me = jax.lax.axis_index(ring.axis)
    chunk = (ks, vs, kv_seg)
    dq, dk, dv = _hop_backward(ring, 0, qs, q_seg, out, lse, d_out, chunk)
    for hop in range(1, ring.hops):
        chunk, (dk, dv) = _shift((chunk, (dk, dv)), ring, 1)
        seen = functools.partial(_hop_backward, ring, hop)
        dq_h, dk_h, dv_h = jax.lax.cond(me >= hop, seen, _no_gradient, qs, q_seg, out, lse, d_out, chunk)
        dq, dk, dv = dq + dq_h, dk + dk_h, dv + dv_h
    dk, dv = _shift((dk, dv), ring, 1 - ring.hops)  # each chunk's gradients home to the device that owns it
    return dq.astype(qs.dtype), dk.astype(ks.dtype), dv.astype(vs.dtype), None, None


_ring.defvjp(_forward, _backward)


def _shift(tree, ring: Ring, by: int):
    """Every array of tree moved `by` devices along the ring."""
    if by % ring.devices == 0:
        return tree
    perm = [(i, (i + by) % ring.devices) for i in range(ring.devices)]
    return jax.tree.map(lambda x: jax.lax.ppermute(x, ring.axis, perm), tree)


def _merge(out, lse, out_h, lse_h):
    """Two partial softmaxes over disjoint keys as one: outputs weighted by their share of the total."""
    total = jnp.logaddexp(lse, lse_h)

    def share(o, part):  # a part no key reached has lse -inf and an undefined output: it adds nothing
        unseen = jnp.isneginf(part)
        weight = jnp.where(unseen, 0.0, jnp.exp(part - jnp.where(unseen, 0.0, total)))
        return jnp.where(unseen[..., None], 0.0, o) * weight[..., None]

    return share(out, lse) + share(out_h, lse_h), total


def _hop_forward(ring: Ring, hop: int, qs, q_seg, chunk):
    """Outputs [B, KV, G, S, D] (fp32) and log-sum-exp [B, KV, G, S] of the queries over the hop's chunk."""
    ks, vs, kv_seg = chunk
    kernel = _kernel(ring, hop, residuals=True)

    def one_row(qr, kr, vr, q_row, kv_row):
        segments = splash_kernel.SegmentIds(q=q_row, kv=kv_row)
        return splash_kernels.over(lambda qh, kh, vh: kernel(qh, kh, vh, segments), _LOOP, qr, kr, vr)

    out, (lse,) = splash_kernels.over(one_row, _LOOP, qs, ks, vs, q_seg, kv_seg)
    return out.astype(jnp.float32), lse.astype(jnp.float32)


def _nothing_seen(qs, q_seg, chunk):
    del q_seg, chunk
    return jnp.zeros(qs.shape, jnp.float32), jnp.full(qs.shape[:-1], -jnp.inf, jnp.float32)


def _hop_backward(ring: Ring, hop: int, qs, q_seg, out, lse, d_out, chunk):
    """The hop's share of dq, and the gradients of its chunk's keys and values, in fp32."""
    ks, vs, kv_seg = chunk
    kernel = _kernel(ring, hop, residuals=False)
    options = kernel.kwargs
    dq_info, dkv_info = (_collapsed(info) for info in (kernel.dq_mask_info, kernel.dkv_mask_info))

    def one_head(qh, kh, vh, oh, lh, gh, *, segments):
        residuals = (qh, kh, vh, segments, None, oh, lh, dq_info, dkv_info)
        grads = splash_kernel._splash_attention_bwd(  # splash's backward kernels, run against our lse
            False,
            options["mask_value"],
            options["is_mqa"],
            options["block_sizes"],
            None,
            options["mask_function"],
            options["attn_logits_soft_cap"],
            options["interpret"],
            residuals,
            gh,
        )
        return grads[3:6]

    def one_row(qr, kr, vr, orow, lrow, grow, q_row, kv_row):
        segments = splash_kernel.SegmentIds(q=q_row, kv=kv_row)
        heads = functools.partial(one_head, segments=segments)
        return splash_kernels.over(heads, _LOOP, qr, kr, vr, orow, lrow, grow)

    grads = splash_kernels.over(one_row, _LOOP, qs, ks, vs, out, lse, d_out, q_seg, kv_seg)
    return tuple(g.astype(jnp.float32) for g in grads)


def _no_gradient(qs, q_seg, out, lse, d_out, chunk):
    del q_seg, out, lse, d_out
    ks, vs, _ = chunk
    return tuple(jnp.zeros(x.shape, jnp.float32) for x in (qs, ks, vs))


def _kernel(ring: Ring, hop: int, residuals: bool):
    interpreter = "generic" if ring.interpret else None
    return splash_kernels.kernel(ring.length, ring.t, ring.window, hop, ring.group, ring.block, interpreter, residuals)


def _collapsed(info):
    """A mask info as splash's own call hands it to the backward kernels: partial mask blocks flattened."""
    if info is None or info.partial_mask_blocks is None:
        return info
    blocks = info.partial_mask_blocks
    return info._replace(partial_mask_blocks=blocks.reshape(-1, *blocks.shape[-2:]))
