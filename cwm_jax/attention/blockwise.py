"""Memory-efficient attention: online softmax over key blocks, one query block at a time.

Peak memory per layer is O(T * block) instead of O(T^2): no T x T mask or score matrix is built, key
blocks wholly outside the causal window are skipped, and each query block is rematerialized in the
backward pass instead of storing its probabilities.
"""

import math

import jax
import jax.numpy as jnp

from cwm_jax.attention.mask import visibility
from cwm_jax.attention.padding import pad_sequence


def _blocks(x: jax.Array, n: int, size: int) -> jax.Array:
    """[B, n*size, ...] -> [n, B, size, ...]."""
    return jnp.moveaxis(x.reshape(x.shape[0], n, size, *x.shape[2:]), 1, 0)


def query_blocks(q, kv_heads: int, positions, segments, n: int, size: int):
    """Queries [B, T, H, D] as n blocks [n, B, size, KV, G, D], with their positions and segments; padded
    queries carry segment -2 and see nothing."""
    b, t, heads, dim = q.shape
    q = pad_sequence(q, n * size, 0).reshape(b, n * size, kv_heads, heads // kv_heads, dim)
    return (
        _blocks(q, n, size),
        _blocks(pad_sequence(positions, n * size, 0), n, size),
        _blocks(pad_sequence(segments, n * size, -2), n, size),
    )


def key_blocks(k, v, positions, segments, n: int, size: int):
    """Keys and values [B, S, KV, D] as n blocks [n, B, size, KV, D], with positions and segments; padded
    keys carry segment -1 and nothing sees them."""
    return (
        _blocks(pad_sequence(k, n * size, 0), n, size),
        _blocks(pad_sequence(v, n * size, 0), n, size),
        _blocks(pad_sequence(positions, n * size, 0), n, size),
        _blocks(pad_sequence(segments, n * size, -1), n, size),
    )


def assemble(out, t: int, dtype):
    """Per-block outputs [n, B, KV, G, size, D] back to [B, t, H, D]."""
    n, b, kv_heads, group, size, dim = out.shape
    out = jnp.moveaxis(out, 4, 2).reshape(n, b, size, kv_heads * group, dim)
    return jnp.moveaxis(out, 0, 1).reshape(b, n * size, kv_heads * group, dim)[:, :t].astype(dtype)


def empty_state(b: int, size: int, kv_heads: int, group: int, dim: int):
    """Running (max, sum of exp, weighted values) of an online softmax for a query block [B, size, KV, G, D]:
    [B, KV, G, size] and [..., D]."""
    stats = (b, kv_heads, group, size)
    return (
        jnp.full(stats, -jnp.inf, jnp.float32),
        jnp.zeros(stats, jnp.float32),
        jnp.zeros((*stats, dim), jnp.float32),
    )


def online_softmax_step(state, qi, kj, vj, mask):
    """Folds the keys kj [B, S, KV, D] (and values vj) visible under mask [B, Q, S] into the state of the
    queries qi [B, Q, KV, G, D]."""
    m, denominator, acc = state
    s = jnp.einsum("bqkgd,bskd->bkgqs", qi, kj, preferred_element_type=jnp.float32) * qi.shape[-1] ** -0.5
    s = jnp.where(mask[:, None, None], s, -jnp.inf)
    # The result does not depend on the running max, so no gradient flows through it.
    m_new = jax.lax.stop_gradient(jnp.maximum(m, s.max(-1)))
    m_safe = jnp.where(jnp.isfinite(m_new), m_new, 0.0)
    p = jnp.exp(s - m_safe[..., None])
    correction = jnp.exp(m - m_safe)
    pv = jnp.einsum("bkgqs,bskd->bkgqd", p.astype(vj.dtype), vj, preferred_element_type=jnp.float32)
    return m_new, denominator * correction + p.sum(-1), acc * correction[..., None] + pv


def fold_visible_blocks(state, qi, qpos, qseg, key_blocks, window):
    """Folds every key block [n, B, size, ...] (with positions and segments) into the state of the query
    block qi, skipping blocks none of its queries can see."""
    k_blocks, v_blocks, kpos_blocks, kseg_blocks = key_blocks

    def visit(state, j):
        def take(blocks):
            return jax.lax.dynamic_index_in_dim(blocks, j, 0, keepdims=False)

        mask = visibility(qpos, take(kpos_blocks), qseg, take(kseg_blocks), window)

        def step(st):
            return online_softmax_step(st, qi, take(k_blocks), take(v_blocks), mask)

        return jax.lax.cond(mask.any(), step, lambda st: st, state), None

    return jax.lax.scan(visit, state, jnp.arange(k_blocks.shape[0]))[0]


def normalize(state):
    """The attention output [B, KV, G, Q, D] of a finished state (zero for a query that saw no key)."""
    _, denominator, acc = state
    return acc / jnp.where(denominator == 0, 1.0, denominator)[..., None]


def attend(q, k, v, *, q_positions, kv_positions, q_segments, kv_segments, window, block_size):
    t = q.shape[1]
    if k.shape[1] != t:
        raise ValueError(f"blockwise attention is self-attention only: {t} queries vs {k.shape[1]} keys")
    size = min(block_size, t)
    n = math.ceil(t / size)
    q_blocks, qpos_blocks, qseg_blocks = query_blocks(q, k.shape[2], q_positions, q_segments, n, size)
    k_blocks, v_blocks, kpos_blocks, kseg_blocks = key_blocks(k, v, kv_positions, kv_segments, n, size)
    # Key block j can matter to query block i only if i - span < j <= i.
    span = n if window is None else min(n, math.ceil((window - 1) / size) + 1)

    @jax.checkpoint
    def query_block(i, qi, qpos, qseg):
        def visit(carry, back):
            j = i - back

            def accumulate(state):
                def take(blocks):
                    return jax.lax.dynamic_index_in_dim(blocks, j, 0, keepdims=False)

                mask = visibility(qpos, take(kpos_blocks), qseg, take(kseg_blocks), window)
                return online_softmax_step(state, qi, take(k_blocks), take(v_blocks), mask)

            return jax.lax.cond(j >= 0, accumulate, lambda state: state, carry), None

        state, _ = jax.lax.scan(visit, empty_state(*qi.shape), jnp.arange(span))
        return normalize(state)

    def scan_queries(_, xs):
        return None, query_block(*xs)

    _, out = jax.lax.scan(scan_queries, None, (jnp.arange(n), q_blocks, qpos_blocks, qseg_blocks))
    return assemble(out, t, q.dtype)


def attend_cache(q, cache_k, cache_v, *, q_positions, kv_positions, window, block_size):
    """One step's queries [B, C, H, D] over a KV cache [B, S, KV, D] whose slots hold kv_positions (a
    position above every query's when empty): an online softmax over blocks of cache slots, skipping blocks
    no query sees, so a long cache never needs a C x S score matrix."""
    c, slots = q.shape[1], cache_k.shape[1]
    size = min(block_size, slots)
    n = math.ceil(slots / size)

    def ones(x):
        return jnp.ones(x.shape, jnp.int32)  # a cache holds one sequence per row

    q_blocks, qpos_blocks, qseg_blocks = query_blocks(q, cache_k.shape[2], q_positions, ones(q_positions), 1, c)
    keys = key_blocks(cache_k, cache_v, kv_positions, ones(kv_positions), n, size)
    qi = q_blocks[0]
    state = fold_visible_blocks(empty_state(*qi.shape), qi, qpos_blocks[0], qseg_blocks[0], keys, window)
    return assemble(normalize(state)[None], c, q.dtype)
