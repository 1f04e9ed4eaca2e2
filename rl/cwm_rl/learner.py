"""The learner: samples -> padded token batch -> one GRPO update (jit), with the optimizer of the trainer."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from cwm_rl.grpo import grpo_loss, token_advantages
from cwm_rl.samples import Sample


def make_batch(samples: list[Sample], rows: int, group_size: int, length_multiple: int = 32) -> dict[str, np.ndarray]:
    """Arrays over `rows` rows (missing groups padded with empty rows), for target positions 1..T-1:
    tokens [rows, T]; mask, old_logp and rewards [rows, T-1] (the reward on each sample's last model token);
    trained [rows]: 1 for samples that count, 0 for padding rows and infrastructure failures."""
    longest = max(len(s.prompt) + len(s.completion) for s in samples)
    length = max(length_multiple, math.ceil(longest / length_multiple) * length_multiple)
    tokens = np.zeros((rows, length), np.int32)
    segments = np.zeros((rows, length), np.int32)
    mask = np.zeros((rows, length - 1), np.float32)
    old_logp = np.zeros((rows, length - 1), np.float32)
    rewards = np.zeros((rows, length - 1), np.float32)
    trained = np.zeros((rows,), np.float32)
    if len(samples) % group_size:
        raise ValueError("samples must come in whole groups")
    for row, sample in enumerate(samples):
        sequence = sample.prompt + sample.completion
        tokens[row, : len(sequence)] = sequence
        segments[row, : len(sequence)] = 1
        start = len(sample.prompt) - 1  # target position of completion token 0
        mask[row, start : start + len(sample.completion)] = sample.model_mask
        old_logp[row, start : start + len(sample.completion)] = sample.logprobs
        trained[row] = float(sample.trained)
        model_positions = np.flatnonzero(np.asarray(sample.model_mask))
        if len(model_positions):
            rewards[row, start + model_positions[-1]] = sample.reward
    return {
        "tokens": tokens,
        "segments": segments,
        "mask": mask,
        "old_logp": old_logp,
        "rewards": rewards,
        "trained": trained,
    }


def make_rl_step(
    graphdef,
    optimizer: optax.GradientTransformation,
    group_size: int,
    eps_low: float,
    eps_high: float,
    budget: float,
    normalize_std: bool,
    kl_coef: float,
):
    """rl_step(state, batch, ref_params) -> (state, metrics); ref_params only matter when kl_coef > 0."""

    def token_logp(params, batch):
        logits = nnx.merge(graphdef, params)(batch["tokens"], segment_ids=batch["segments"])
        logp = jax.nn.log_softmax(logits[:, :-1].astype(jnp.float32), axis=-1)
        return jnp.take_along_axis(logp, batch["tokens"][:, 1:, None], axis=-1)[..., 0]

    def loss_fn(params, batch, ref_params):
        new_logp = token_logp(params, batch)
        advantages = token_advantages(batch["rewards"], group_size, normalize_std, batch["trained"])
        ref_logp = jax.lax.stop_gradient(token_logp(ref_params, batch)) if kl_coef else None
        return grpo_loss(
            new_logp,
            batch["old_logp"],
            advantages,
            batch["mask"] * batch["trained"][:, None],
            eps_low,
            eps_high,
            budget,
            kl_coef,
            ref_logp,
        )

    def rl_step(state, batch, ref_params):
        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"], batch, ref_params)
        updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
        new_state = {
            "params": optax.apply_updates(state["params"], updates),
            "opt_state": opt_state,
            "step": state["step"] + 1,
            "rng": state["rng"],
        }
        return new_state, {"loss": loss, "grad_norm": optax.tree.norm(grads), **metrics}

    return jax.jit(rl_step, donate_argnums=0)
