"""Memory-efficient attention: online softmax over key blocks, one query block at a time.

Peak memory per layer is O(T * block) instead of O(T^2): no T x T mask or score matrix is built, key
blocks wholly outside the causal window are skipped, and each query block is rematerialized in the
backward pass instead of storing its probabilities.
"""

import math

import jax
import jax.numpy as jnp

from cwm_jax.attention.mask import visibility


def _blocks(x: jax.Array, n: int, size: int) -> jax.Array:
    """[B, n*size, ...] -> [n, B, size, ...]."""
    return jnp.moveaxis(x.reshape(x.shape[0], n, size, *x.shape[2:]), 1, 0)


def _pad_length(x: jax.Array, length: int, value) -> jax.Array:
    pad = [(0, 0)] * x.ndim
    pad[1] = (0, length - x.shape[1])
    return jnp.pad(x, pad, constant_values=value)


def attend(q, k, v, *, q_positions, kv_positions, q_segments, kv_segments, window, block_size):
    b, t, heads, dim = q.shape
    if k.shape[1] != t:
        raise ValueError(f"blockwise attention is self-attention only: {t} queries vs {k.shape[1]} keys")
    kv_heads = k.shape[2]
    size = min(block_size, t)
    n = math.ceil(t / size)
    padded = n * size
    # Padded keys carry segment -1 and padded queries -2: they see nothing and nothing sees them.
    q, k, v = (_pad_length(a, padded, 0) for a in (q, k, v))
    q_positions, kv_positions = (_pad_length(p, padded, 0) for p in (q_positions, kv_positions))
    q_segments, kv_segments = _pad_length(q_segments, padded, -2), _pad_length(kv_segments, padded, -1)

    q_blocks = _blocks(q.reshape(b, padded, kv_heads, heads // kv_heads, dim), n, size)
    k_blocks, v_blocks = _blocks(k, n, size), _blocks(v, n, size)
    kpos_blocks, kseg_blocks = _blocks(kv_positions, n, size), _blocks(kv_segments, n, size)
    # Key block j can matter to query block i only if i - span < j <= i.
    span = n if window is None else min(n, math.ceil((window - 1) / size) + 1)
    scale = dim**-0.5

    @jax.checkpoint
    def query_block(i, qi, qpos, qseg):
        def visit(carry, back):
            j = i - back

            def accumulate(state):
                m, l, acc = state
                take = lambda blocks: jax.lax.dynamic_index_in_dim(blocks, j, 0, keepdims=False)
                kj, vj = take(k_blocks), take(v_blocks)
                s = jnp.einsum("bqkgd,bskd->bkgqs", qi, kj, preferred_element_type=jnp.float32) * scale
                mask = visibility(qpos, take(kpos_blocks), qseg, take(kseg_blocks), window)
                s = jnp.where(mask[:, None, None], s, -jnp.inf)
                # The result does not depend on the running max, so no gradient flows through it.
                m_new = jax.lax.stop_gradient(jnp.maximum(m, s.max(-1)))
                m_safe = jnp.where(jnp.isfinite(m_new), m_new, 0.0)
                p = jnp.exp(s - m_safe[..., None])
                correction = jnp.exp(m - m_safe)
                pv = jnp.einsum("bkgqs,bskd->bkgqd", p.astype(vj.dtype), vj,
                                preferred_element_type=jnp.float32)
                return m_new, l * correction + p.sum(-1), acc * correction[..., None] + pv

            return jax.lax.cond(j >= 0, accumulate, lambda state: state, carry), None

        stats = (b, kv_heads, heads // kv_heads, size)
        init = (jnp.full(stats, -jnp.inf, jnp.float32), jnp.zeros(stats, jnp.float32),
                jnp.zeros((*stats, dim), jnp.float32))
        (_, l, acc), _ = jax.lax.scan(visit, init, jnp.arange(span))
        return acc / jnp.where(l == 0, 1.0, l)[..., None]

    def scan_queries(_, xs):
        return None, query_block(*xs)

    xs = (jnp.arange(n), q_blocks, _blocks(q_positions, n, size), _blocks(q_segments, n, size))
    _, out = jax.lax.scan(scan_queries, None, xs)  # [n, B, KV, G, size, D]
    out = jnp.moveaxis(out, 4, 2).reshape(n, b, size, heads, dim)
    return jnp.moveaxis(out, 0, 1).reshape(b, padded, heads, dim)[:, :t].astype(q.dtype)
