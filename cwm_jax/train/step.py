"""The one update step of training and RL: an objective's summed loss and gradients accumulated over
micro-batches, divided once for the whole batch, then the optimizer's update.

An `Objective` says what is minimized: `summed_loss(model, micro)` gives the loss summed over the micro-batch's
rows and additive sums for metrics; the summed loss and its gradients are divided by `denominator(sums)` of
the whole batch, so the update does not depend on how the rows are split; `metrics(sums, denominator)` gives
what is logged. `prepare(params, batch, *extra)` first adds what needs the whole batch (RL's group
advantages, a reference policy's log-probs).
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from cwm_jax.loss import target_weights, token_losses

Sums = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class Objective:
    summed_loss: Callable[[Any, dict], tuple[jax.Array, Sums]]
    denominator: Callable[[Sums], jax.Array]
    metrics: Callable[[Sums, jax.Array], dict[str, jax.Array]]
    prepare: Callable[..., dict] = lambda params, batch, *extra: batch


def next_token_objective(z_loss: float) -> Objective:
    """Pre-training and SFT: token-level cross-entropy over the unmasked targets (+ z-loss)."""

    def summed_loss(model, micro):
        logits = model(micro["tokens"], segment_ids=micro["segment_ids"], positions=micro["positions"])
        nll, log_z = token_losses(logits, micro["tokens"])
        weights = target_weights(micro["tokens"], micro["loss_mask"], micro["segment_ids"])
        total = jnp.sum(nll * weights) + z_loss * jnp.sum(jnp.square(log_z) * weights)
        return total, {"nll": jnp.sum(nll * weights), "target_tokens": jnp.sum(weights)}

    return Objective(
        summed_loss,
        denominator=lambda sums: jnp.maximum(sums["target_tokens"], 1.0),
        metrics=lambda sums, denominator: {"loss": sums["nll"] / denominator, "target_tokens": sums["target_tokens"]},
    )


def make_train_step(graphdef, optimizer: optax.GradientTransformation, schedule, grad_accum: int, objective: Objective):
    """step(state, batch, *extra) -> (state, metrics), the batch split into grad_accum micro-batches."""

    def summed(params, micro):
        return objective.summed_loss(nnx.merge(graphdef, params), micro)

    grad_fn = jax.value_and_grad(summed, has_aux=True)

    def train_step(state, batch, *extra):
        params = state["params"]
        batch = objective.prepare(params, batch, *extra)
        # [B, ...] -> [A, B/A, ...] taking every A-th row: each device's rows stay on it.
        micro = jax.tree.map(lambda x: jnp.swapaxes(x.reshape(-1, grad_accum, *x.shape[1:]), 0, 1), batch)

        def accumulate(carry, mb):
            grads, sums = carry
            (_, mb_sums), mb_grads = grad_fn(params, mb)
            return (jax.tree.map(jnp.add, grads, mb_grads), jax.tree.map(jnp.add, sums, mb_sums)), None

        sums_shape = jax.eval_shape(lambda: summed(params, jax.tree.map(lambda x: x[0], micro))[1])
        zero_sums = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), sums_shape)
        zeros = jax.tree.map(jnp.zeros_like, params)
        (grads, sums), _ = jax.lax.scan(accumulate, (zeros, zero_sums), micro)
        denominator = objective.denominator(sums)
        grads = jax.tree.map(lambda g: g / denominator, grads)
        updates, opt_state = optimizer.update(grads, state["opt_state"], params)
        new_state = {
            "params": optax.apply_updates(params, updates),
            "opt_state": opt_state,
            "step": state["step"] + 1,
            "rng": state["rng"],
        }
        metrics = {
            **objective.metrics(sums, denominator),
            "grad_norm": optax.tree.norm(grads),
            "lr": schedule(state["step"]),
        }
        return new_state, metrics

    return train_step
