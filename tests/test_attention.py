import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cwm_jax.attention import blockwise, reference, ring
from cwm_jax.sharding import ShardingRules, activation_rules, make_mesh

B, T, HEADS, KV, D = 2, 37, 6, 2, 8


def _inputs(seed=0, t=T):
    rng = np.random.default_rng(seed)
    q, k, v = (jnp.asarray(rng.normal(size=(B, t, h, D)), jnp.float32) for h in (HEADS, KV, KV))
    # Row 0: three packed documents with positions restarting; row 1: one document.
    segments = np.zeros((B, t), np.int32)
    segments[0, 10:25], segments[0, 25:] = 1, 2
    positions = np.concatenate([np.arange(10), np.arange(15), np.arange(t - 25)])[None].repeat(B, 0)
    positions[1] = np.arange(t)
    return q, k, v, jnp.asarray(positions), jnp.asarray(segments)


def _call(impl, q, k, v, positions, segments, window, block_size=8):
    return impl(
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


@pytest.mark.parametrize("window", [None, 4])
def test_reference_matches_the_definition(window):
    q, k, v, pos, seg = _inputs()
    out = np.asarray(_call(reference.attend, q, k, v, pos, seg, window))
    q, k, v, pos, seg = map(np.asarray, (q, k, v, pos, seg))
    for b in range(B):
        for i in range(T):
            for h in range(HEADS):
                g = h // (HEADS // KV)  # query head h reads kv head h // group
                keys = [j for j in range(T) if seg[b, j] == seg[b, i] and j <= i and (window is None or i - window < j)]
                s = np.array([q[b, i, h] @ k[b, j, g] for j in keys]) / math.sqrt(D)
                p = np.exp(s - s.max())
                p /= p.sum()
                np.testing.assert_allclose(out[b, i, h], p @ v[b, keys, g], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("window, block", [(None, 8), (5, 8), (16, 8), (3, 64), (None, 5)])
def test_blockwise_equals_reference_values_and_gradients(window, block):
    q, k, v, pos, seg = _inputs(seed=window or 1)
    cotangent = jnp.asarray(np.random.default_rng(9).normal(size=q.shape), jnp.float32)

    def objective(impl, q, k, v):
        return jnp.sum(_call(impl, q, k, v, pos, seg, window, block) * cotangent)

    ref_out = _call(reference.attend, q, k, v, pos, seg, window)
    blk_out = _call(blockwise.attend, q, k, v, pos, seg, window, block)
    np.testing.assert_allclose(blk_out, ref_out, rtol=1e-5, atol=1e-5)
    ref_grads = jax.grad(lambda *a: objective(reference.attend, *a), argnums=(0, 1, 2))(q, k, v)
    blk_grads = jax.grad(lambda *a: objective(blockwise.attend, *a), argnums=(0, 1, 2))(q, k, v)
    for r, g in zip(ref_grads, blk_grads, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)


def _largest_intermediate(jaxpr) -> int:
    largest = 0
    for eqn in jaxpr.eqns:
        for var in eqn.outvars:
            largest = max(largest, int(np.prod(getattr(var.aval, "shape", ()))))
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else (param,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    largest = max(largest, _largest_intermediate(inner))
    return largest


def test_blockwise_never_builds_a_full_score_matrix():
    t = 256
    q, k, v, pos, seg = _inputs(t=t)

    def fn(q, k, v):
        return jnp.sum(_call(blockwise.attend, q, k, v, pos, seg, None, 32))

    full_scores = B * HEADS * t * t
    forward = jax.make_jaxpr(fn)(q, k, v).jaxpr
    backward = jax.make_jaxpr(jax.grad(fn, argnums=(0, 1, 2)))(q, k, v).jaxpr
    assert _largest_intermediate(forward) <= full_scores // 8
    assert _largest_intermediate(backward) <= full_scores // 8

    def reference_fn(q, k, v):
        return jnp.sum(_call(reference.attend, q, k, v, pos, seg, None))

    assert _largest_intermediate(jax.make_jaxpr(reference_fn)(q, k, v).jaxpr) >= full_scores


@pytest.mark.parametrize("window", [None, 4, 13])
def test_ring_over_a_split_sequence_matches_reference(window):
    """10 tokens per device over sequence=4 (blocks of 4, so each chunk is padded), heads over tensor=2;
    values and gradients, with K/V moved by collective permutes and never all-gathered."""
    q, k, v, pos, seg = _inputs(t=40)
    mesh = make_mesh({"tensor": 2, "sequence": 4, "data": 1, "fsdp": 1})

    def loss(impl):
        return lambda q, k, v: (_call(impl, q, k, v, pos, seg, window, block_size=4) ** 2).sum()

    with jax.set_mesh(mesh), activation_rules(ShardingRules()):
        out = jax.jit(lambda q, k, v: _call(ring.attend, q, k, v, pos, seg, window, block_size=4))(q, k, v)
        grad_fn = jax.jit(jax.grad(loss(ring.attend), argnums=(0, 1, 2)))
        grads = grad_fn(q, k, v)
        hlo = grad_fn.lower(q, k, v).compile().as_text()
    assert hlo is not None and "collective-permute" in hlo and "all-gather" not in hlo
    np.testing.assert_allclose(out, _call(reference.attend, q, k, v, pos, seg, window), atol=1e-5)
    for got, want in zip(grads, jax.grad(loss(reference.attend), argnums=(0, 1, 2))(q, k, v), strict=True):
        np.testing.assert_allclose(got, want, atol=2e-5)
    # Without a split sequence, ring is blockwise.
    np.testing.assert_array_equal(
        _call(ring.attend, q, k, v, pos, seg, window, block_size=4),
        _call(blockwise.attend, q, k, v, pos, seg, window, block_size=4),
    )
