"""Token-level next-token cross-entropy in fp32, with a loss mask."""

import jax
import jax.numpy as jnp


def next_token_loss(logits: jax.Array, tokens: jax.Array, mask: jax.Array | None = None):
    """Sum of -log p(tokens[t+1] | ..t) over positions whose target is unmasked, and their count.

    logits [B, T, V] predict tokens [B, T] shifted by one; mask [B, T] weights each *target* token.
    Returning (sum, count) lets callers average over a whole accumulated batch, not per row.
    """
    logits = logits[:, :-1].astype(jnp.float32)
    targets = tokens[:, 1:]
    weights = jnp.ones(targets.shape, jnp.float32) if mask is None else mask[:, 1:].astype(jnp.float32)
    log_z = jax.nn.logsumexp(logits, axis=-1)
    picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return jnp.sum((log_z - picked) * weights), jnp.sum(weights)
