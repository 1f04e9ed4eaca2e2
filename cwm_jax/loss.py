"""Token-level next-token cross-entropy in fp32, with a loss mask, and the z-loss term; per-token log-probs
with the output head applied in chunks (memory-bounded, for long RL episodes)."""

import jax
import jax.numpy as jnp

from cwm_jax.model import head_logits


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


def token_logprobs(model, tokens: jax.Array, segment_ids: jax.Array | None = None, chunk: int = 512) -> jax.Array:
    """log p(tokens[t+1] | ..t) [B, T-1] in fp32, with the output head applied `chunk` positions at a time and
    recomputed in the backward pass: no [B, T, vocab] array exists, only one chunk's [B, chunk, vocab]."""
    hidden = model.hidden(tokens, segment_ids=segment_ids)[:, :-1]
    targets = tokens[:, 1:]
    batch, length, width = hidden.shape
    chunk = min(chunk, length)
    pad = -length % chunk
    hidden = jnp.pad(hidden, ((0, 0), (0, pad), (0, 0)))
    targets = jnp.pad(targets, ((0, 0), (0, pad)))
    pieces = length // chunk + (pad > 0)
    hidden = hidden.reshape(batch, pieces, chunk, width).swapaxes(0, 1)
    targets = targets.reshape(batch, pieces, chunk).swapaxes(0, 1)

    @jax.checkpoint
    def piece_logprobs(lm_head, h, t):
        logits = head_logits(h, lm_head)
        picked = jnp.take_along_axis(logits, t[..., None], axis=-1)[..., 0]
        return picked - jax.nn.logsumexp(logits, axis=-1)

    lm_head = model.lm_head[...]
    out = jax.lax.map(lambda xs: piece_logprobs(lm_head, *xs), (hidden, targets))
    return out.swapaxes(0, 1).reshape(batch, pieces * chunk)[:, :length]
