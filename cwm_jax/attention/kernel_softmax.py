"""The online softmax inside our Pallas kernels: a program's rows of queries fold one tile of keys and values
at a time into fp32 (max, sum of exp, weighted values)."""

import jax.numpy as jnp


def empty_state(rows: int, dim: int):
    return jnp.full((rows,), -jnp.inf, jnp.float32), jnp.zeros((rows,), jnp.float32), jnp.zeros((rows, dim))


def fold(state, q, k, v, seen, scale):
    """Folds a tile of keys and values [N, D] that the rows see where `seen` [R, N] into their state."""
    m, denominator, acc = state
    s = jnp.where(seen, jnp.dot(q, k.T, preferred_element_type=jnp.float32) * scale, -jnp.inf)
    m_new = jnp.maximum(m, s.max(axis=1))
    m_safe = jnp.where(jnp.isfinite(m_new), m_new, 0.0)
    p = jnp.exp(s - m_safe[:, None])
    correction = jnp.exp(m - m_safe)
    pv = jnp.dot(p.astype(v.dtype), v, preferred_element_type=jnp.float32)
    return m_new, denominator * correction + p.sum(axis=1), acc * correction[:, None] + pv


def normalized(state):
    _, denominator, acc = state
    return acc / jnp.where(denominator == 0, 1.0, denominator)[:, None]
