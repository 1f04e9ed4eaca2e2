"""Every loss and advantage of CWM's GRPO variant, in one auditable file (CWM.md section 5.4).

- Advantage: the return minus the mean return of the prompt's group (no division by the group's std, as
  CWM; `normalize_std=True` gives the original GRPO). Rewards sit on the tokens where they are earned
  (the last action token for an outcome reward); a token's return is the sum of rewards from it to the
  end (no discount), so with one final reward every model token of a sample gets R_i - mean_group(R).
- Objective per model token: PPO's clipped surrogate with separate low/high epsilons ("clip-higher"), the
  importance ratio taken against the behaviour policy's log-probs recorded at sampling time.
- No per-trajectory length normalization: the token sum is divided by a constant budget (tokens per
  batch), so long and short samples weigh by their tokens.
- Environment tokens (tool outputs in multi-turn episodes) are masked out, and so are whole samples the
  infrastructure failed (`trained` 0): they are neither trained on nor part of their group's baseline.
- Optional KL to a reference policy (k3 estimator), off by default.
"""

import jax
import jax.numpy as jnp


def token_returns(token_rewards: jax.Array) -> jax.Array:
    """[N, T] rewards at the tokens where they are earned -> [N, T] undiscounted returns-to-go."""
    return jnp.flip(jnp.cumsum(jnp.flip(token_rewards, axis=1), axis=1), axis=1)


def token_advantages(
    token_rewards: jax.Array, group_size: int, normalize_std: bool = False, trained: jax.Array | None = None
) -> jax.Array:
    """Per-token advantages for N = prompts x group_size samples (groups consecutive): the token's return
    minus the mean total return of the group's trained samples (divided by their std when normalize_std);
    zero for samples not trained (`trained` [N] 0)."""
    returns = token_returns(token_rewards)
    trained = jnp.ones(returns.shape[:1], jnp.float32) if trained is None else trained.astype(jnp.float32)
    totals, weights = returns[:, 0].reshape(-1, group_size), trained.reshape(-1, group_size)
    count = jnp.maximum(weights.sum(axis=1), 1.0)
    mean = (totals * weights).sum(axis=1) / count
    advantages = returns - jnp.repeat(mean, group_size)[:, None]
    if normalize_std:
        std = jnp.sqrt((weights * (totals - mean[:, None]) ** 2).sum(axis=1) / count)
        advantages = advantages / (jnp.repeat(std, group_size)[:, None] + 1e-6)
    return advantages * trained[:, None]


def grpo_sums(
    new_logp: jax.Array,
    old_logp: jax.Array,
    advantages: jax.Array,
    mask: jax.Array,
    eps_low: float,
    eps_high: float,
    kl_coef: float = 0.0,
    ref_logp: jax.Array | None = None,
) -> dict[str, jax.Array]:
    """Sums over the model tokens (`mask` 1) of inputs [N, T]: the clipped surrogate, the clipped tokens, the
    ratios, the tokens, and the KL when kl_coef. Sums add up over micro-batches (cwm_jax/train/step.py)."""
    mask = mask.astype(jnp.float32)
    ratio = jnp.exp(new_logp - old_logp)
    unclipped = ratio * advantages
    clipped = jnp.clip(ratio, 1.0 - eps_low, 1.0 + eps_high) * advantages
    sums = {
        "surrogate": jnp.sum(jnp.minimum(unclipped, clipped) * mask),
        "clipped": jnp.sum((clipped < unclipped) * mask),
        "ratio": jnp.sum(ratio * mask),
        "tokens": jnp.sum(mask),
    }
    if kl_coef:
        if ref_logp is None:
            raise ValueError("a KL penalty (kl_coef) needs ref_logp")
        delta = ref_logp - new_logp
        sums["kl"] = jnp.sum((jnp.exp(delta) - delta - 1.0) * mask)
    return sums


def summed_loss(sums: dict[str, jax.Array], kl_coef: float = 0.0) -> jax.Array:
    """The loss before the division by the budget: minus the surrogate, plus the KL penalty."""
    loss = -sums["surrogate"]
    return loss + kl_coef * sums["kl"] if kl_coef else loss


def grpo_metrics(sums: dict[str, jax.Array], budget, kl_coef: float = 0.0) -> dict[str, jax.Array]:
    tokens = jnp.maximum(sums["tokens"], 1.0)
    metrics = {
        "loss": summed_loss(sums, kl_coef) / budget,
        "clip_fraction": sums["clipped"] / tokens,
        "ratio_mean": sums["ratio"] / tokens,
    }
    if kl_coef:
        metrics["kl"] = sums["kl"] / tokens
    return metrics
