"""Reference attention: the full score matrix with an explicit mask."""

import jax
import jax.numpy as jnp

from cwm_jax.attention.mask import visibility

# A large finite negative (not -inf) so a row with no visible key gives uniform weights, never NaN.
MASKED = -1e30


def attend(q, k, v, *, q_positions, kv_positions, q_segments, kv_segments, window, block_size):
    del block_size
    b, t, heads, dim = q.shape
    kv_heads = k.shape[2]
    qg = q.reshape(b, t, kv_heads, heads // kv_heads, dim)
    scores = jnp.einsum("btkgd,bskd->bkgts", qg, k, preferred_element_type=jnp.float32) * dim**-0.5
    mask = visibility(q_positions, kv_positions, q_segments, kv_segments, window)
    scores = jnp.where(mask[:, None, None], scores, MASKED)
    probs = jax.nn.softmax(scores, axis=-1)
    out = jnp.einsum("bkgts,bskd->btkgd", probs.astype(v.dtype), v, preferred_element_type=jnp.float32)
    return out.reshape(b, t, heads, dim).astype(q.dtype)
