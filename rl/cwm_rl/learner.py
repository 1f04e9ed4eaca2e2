"""The learner's batch and objective: samples -> a padded token batch; GRPO as an Objective of the trainer's
update step (the RL loop runs that step on the trainer's mesh)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cwm_jax.loss import token_logprobs
from cwm_jax.train.step import Objective
from cwm_rl.grpo import grpo_metrics, grpo_sums, summed_loss, token_advantages
from cwm_rl.samples import Sample


def batch_length(samples: list[Sample], multiple: int = 32) -> int:
    """T of a batch of these samples: the longest, rounded up to `multiple` (fewer distinct compiles)."""
    longest = max(len(s.prompt) + len(s.completion) for s in samples)
    return max(multiple, math.ceil(longest / multiple) * multiple)


def make_batch(samples: list[Sample], rows: int, group_size: int, length: int | None = None) -> dict[str, np.ndarray]:
    """Arrays over `rows` rows (missing groups padded with empty rows), for target positions 1..T-1 (T:
    `length`, by default batch_length(samples)): tokens [rows, T]; mask, old_logp and rewards [rows, T-1]
    (the reward on each sample's last model token); trained [rows]: 1 for samples that count, 0 for padding
    rows and infrastructure failures."""
    length = length or batch_length(samples)
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


def grpo_objective(
    graphdef,
    group_size: int,
    eps_low: float,
    eps_high: float,
    budget: float,
    normalize_std: bool,
    kl_coef: float,
    logprob_chunk: int = 512,
) -> Objective:
    """CWM's GRPO as the trainer's objective (cwm_jax/train/step.py): advantages over whole groups and the
    reference's log-probs before the batch is split; per micro-batch the chunked log-probs and the clipped
    surrogate's sums; everything divided by the constant budget. The step takes the reference params as its
    extra argument (None without a KL term)."""

    def prepare(params, batch, ref_params=None):
        batch = dict(batch)
        batch["advantages"] = token_advantages(batch["rewards"], group_size, normalize_std, batch["trained"])
        batch["mask"] = batch["mask"] * batch["trained"][:, None]
        if kl_coef:
            reference = nnx.merge(graphdef, ref_params)
            batch["ref_logp"] = jax.lax.stop_gradient(
                token_logprobs(reference, batch["tokens"], batch["segments"], logprob_chunk)
            )
        return batch

    def summed(model, micro):
        new_logp = token_logprobs(model, micro["tokens"], micro["segments"], logprob_chunk)
        sums = grpo_sums(
            new_logp,
            micro["old_logp"],
            micro["advantages"],
            micro["mask"],
            eps_low,
            eps_high,
            kl_coef,
            micro.get("ref_logp"),
        )
        return summed_loss(sums, kl_coef), sums

    return Objective(
        summed,
        denominator=lambda sums: jnp.asarray(budget, jnp.float32),
        metrics=lambda sums, denominator: grpo_metrics(sums, denominator, kl_coef),
        prepare=prepare,
    )
