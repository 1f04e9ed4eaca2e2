"""The train step: token-level loss with masks (+ optional z-loss), gradient accumulation, AdamW update."""

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from cwm_jax.loss import target_weights, token_losses


def make_train_step(graphdef, optimizer: optax.GradientTransformation, schedule, grad_accum: int, z_loss: float):
    """train_step(state, batch) -> (state, metrics). The batch is split into grad_accum micro-batches whose
    summed losses and gradients are divided once by the total number of target tokens, so the result does
    not depend on how the batch is split."""

    def summed_loss(params, micro):
        logits = nnx.merge(graphdef, params)(
            micro["tokens"], segment_ids=micro["segment_ids"], positions=micro["positions"]
        )
        nll, log_z = token_losses(logits, micro["tokens"])
        weights = target_weights(micro["tokens"], micro["loss_mask"], micro["segment_ids"])
        total = jnp.sum(nll * weights) + z_loss * jnp.sum(jnp.square(log_z) * weights)
        return total, (jnp.sum(nll * weights), jnp.sum(weights))

    grad_fn = jax.value_and_grad(summed_loss, has_aux=True)

    def train_step(state, batch):
        params = state["params"]
        # [B, T] -> [A, B/A, T] taking every A-th row: each device's rows stay on it.
        micro = jax.tree.map(lambda x: jnp.swapaxes(x.reshape(-1, grad_accum, *x.shape[1:]), 0, 1), batch)

        def accumulate(carry, mb):
            grads, nll, count = carry
            (_, (mb_nll, mb_count)), mb_grads = grad_fn(params, mb)
            return (jax.tree.map(jnp.add, grads, mb_grads), nll + mb_nll, count + mb_count), None

        zeros = jax.tree.map(jnp.zeros_like, params)
        (grads, nll, count), _ = jax.lax.scan(accumulate, (zeros, 0.0, 0.0), micro)
        denominator = jnp.maximum(count, 1.0)
        grads = jax.tree.map(lambda g: g / denominator, grads)
        updates, opt_state = optimizer.update(grads, state["opt_state"], params)
        new_state = {
            "params": optax.apply_updates(params, updates),
            "opt_state": opt_state,
            "step": state["step"] + 1,
            "rng": state["rng"],
        }
        metrics = {
            "loss": nll / denominator,
            "grad_norm": optax.tree.norm(grads),
            "lr": schedule(state["step"]),
            "target_tokens": count,
        }
        return new_state, metrics

    return train_step
