"""Token-level next-token cross-entropy in fp32, with a loss mask, and the z-loss term."""

import jax
import jax.numpy as jnp


def token_losses(logits: jax.Array, tokens: jax.Array):
    """(-log p(tokens[t+1] | ..t), log Z_t), each [B, T-1], from logits [B, T, V]."""
    logits = logits[:, :-1].astype(jnp.float32)
    log_z = jax.nn.logsumexp(logits, axis=-1)
    picked = jnp.take_along_axis(logits, tokens[:, 1:, None], axis=-1)[..., 0]
    return log_z - picked, log_z


def target_weights(tokens: jax.Array, mask: jax.Array | None, segment_ids: jax.Array | None) -> jax.Array:
    """[B, T-1] weight of each target token: its mask, and 0 where it starts another document."""
    weights = jnp.ones(tokens[:, 1:].shape, jnp.float32) if mask is None else mask[:, 1:].astype(jnp.float32)
    if segment_ids is not None:
        weights = weights * (segment_ids[:, 1:] == segment_ids[:, :-1])
    return weights


def next_token_loss(logits: jax.Array, tokens: jax.Array, mask: jax.Array | None = None):
    """Sum of -log p(tokens[t+1] | ..t) over positions whose target is unmasked, and their count.

    Returning (sum, count) lets callers average over a whole accumulated batch, not per row.
    """
    nll, _ = token_losses(logits, tokens)
    weights = target_weights(tokens, mask, None)
    return jnp.sum(nll * weights), jnp.sum(weights)
