"""Drawing tokens: greedy, or temperature with top-k / top-p, each row from its own random stream; the
log-prob returned is under the temperature-scaled distribution before filtering (the behaviour policy RL
needs). The engine (cwm_jax/engine/) calls this once per decode step."""

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0


def sample_token(logits: jax.Array, keys: jax.Array, sampling: Sampling) -> tuple[jax.Array, jax.Array]:
    """(token [B], log-prob [B]) from logits [B, V] (fp32), row b drawn with keys[b]."""
    if sampling.temperature == 0.0:
        token = jnp.argmax(logits, axis=-1)
        logp = jax.nn.log_softmax(logits, axis=-1)
        return token, jnp.take_along_axis(logp, token[:, None], axis=-1)[:, 0]
    scaled = logits / sampling.temperature
    logp = jax.nn.log_softmax(scaled, axis=-1)
    filtered = scaled
    if sampling.top_k > 0:
        kth = jax.lax.top_k(scaled, sampling.top_k)[0][:, -1:]
        filtered = jnp.where(scaled < kth, -jnp.inf, filtered)
    if sampling.top_p < 1.0:
        order = jnp.argsort(-filtered, axis=-1)
        sorted_probs = jnp.take_along_axis(jax.nn.softmax(filtered, axis=-1), order, axis=-1)
        # Keep the smallest prefix whose mass reaches top_p (the first token always stays).
        keep_sorted = (jnp.cumsum(sorted_probs, axis=-1) - sorted_probs) < sampling.top_p
        keep = jnp.zeros_like(keep_sorted).at[jnp.arange(order.shape[0])[:, None], order].set(keep_sorted)
        filtered = jnp.where(keep, filtered, -jnp.inf)
    token = jax.vmap(jax.random.categorical)(keys, filtered)
    return token, jnp.take_along_axis(logp, token[:, None], axis=-1)[:, 0]


def row_keys(seed: int, row_ids) -> jax.Array:
    """One PRNG key per row, from the seed and the row's id."""
    base = jax.random.PRNGKey(seed)
    return jax.vmap(lambda row: jax.random.fold_in(base, row))(jnp.asarray(list(row_ids), jnp.uint32))
