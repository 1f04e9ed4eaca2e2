"""GRPO losses and advantages against hand-computed values."""

import jax.numpy as jnp
import numpy as np
import pytest

from cwm_rl.grpo import grpo_metrics, grpo_sums, token_advantages, token_returns


def grpo_loss(new_logp, old_logp, advantages, mask, eps_low, eps_high, budget, kl_coef=0.0, ref_logp=None):
    """The loss and metrics of a whole batch, as the learner's objective composes them."""
    sums = grpo_sums(new_logp, old_logp, advantages, mask, eps_low, eps_high, kl_coef, ref_logp)
    metrics = grpo_metrics(sums, budget, kl_coef)
    return metrics.pop("loss"), metrics


def test_returns_and_group_relative_advantages():
    # Two groups of two samples, 4 token positions; the outcome reward sits on each sample's last model token.
    rewards = jnp.array([[0, 0, 1.0, 0], [0, -1.0, 0, 0], [0, 0, 0, 1.0], [0, 0, 0, 1.0]])
    np.testing.assert_allclose(token_returns(rewards)[0], [1, 1, 1, 0])
    adv = token_advantages(rewards, group_size=2)
    # Group 1: returns 1 and -1, mean 0 -> +1 / -1 on tokens up to the reward (after it: 0 - 0).
    np.testing.assert_allclose(adv[0], [1, 1, 1, 0])
    np.testing.assert_allclose(adv[1], [-1, -1, 0, 0])
    # Group 2: equal rewards -> zero advantage everywhere (no signal, no update).
    np.testing.assert_allclose(adv[2:], 0)
    # The std-normalized variant divides by the group's std (here 1 for group 1).
    np.testing.assert_allclose(token_advantages(rewards * 3, 2, normalize_std=True)[0, :3], [1, 1, 1], rtol=1e-5)
    np.testing.assert_allclose(token_advantages(rewards * 3, 2)[0, :3], [3, 3, 3])


def test_infrastructure_failures_are_out_of_the_baseline_and_the_update():
    # One group of three: rewards +1, -1, and an infra failure scored -1 that must not count.
    rewards = jnp.array([[1.0, 0], [-1.0, 0], [-1.0, 0]])
    adv = token_advantages(rewards, 3, trained=jnp.array([1.0, 1.0, 0.0]))
    np.testing.assert_allclose(adv[:, 0], [1, -1, 0])  # baseline 0 (not -1/3); the failed sample gets nothing
    std = token_advantages(rewards * 2, 3, normalize_std=True, trained=jnp.array([1.0, 1.0, 0.0]))
    np.testing.assert_allclose(std[:, 0], [1, -1, 0], rtol=1e-5)
    everything_failed = token_advantages(rewards, 3, trained=jnp.zeros(3))
    np.testing.assert_allclose(everything_failed, 0)


def test_clipped_objective_on_both_sides_with_masks_and_budget():
    old = jnp.zeros((1, 4))
    new = jnp.log(jnp.array([[1.5, 0.5, 1.1, 1.5]]))  # ratios 1.5, 0.5, 1.1, 1.5
    adv = jnp.array([[2.0, -1.0, 2.0, -1.0]])
    mask = jnp.array([[1, 1, 1, 0]])  # the last token is an environment token
    loss, metrics = grpo_loss(new, old, adv, mask, eps_low=0.2, eps_high=0.28, budget=10.0)
    # token 0: A>0, ratio 1.5 clipped at 1.28 -> 2.56; token 1: A<0, ratio 0.5 clipped at 0.8 -> -0.8;
    # token 2: inside the range -> 1.1 * 2 = 2.2; token 3 masked out. Sum 3.96 over the budget of 10.
    assert float(loss) == pytest.approx(-(2.56 - 0.8 + 2.2) / 10.0, rel=1e-6)
    assert float(metrics["clip_fraction"]) == pytest.approx(2 / 3)
    # Asymmetric: a ratio of 1.25 with A>0 is inside clip-higher's 1.28 but would be clipped at 1.2.
    loss, _ = grpo_loss(
        jnp.log(jnp.array([[1.25]])), jnp.zeros((1, 1)), jnp.ones((1, 1)), jnp.ones((1, 1)), 0.2, 0.28, 1.0
    )
    assert float(loss) == pytest.approx(-1.25)


def test_no_length_normalization_and_optional_kl():
    # Two samples of 1 and 3 tokens, same advantage: the loss weighs them by tokens (budget constant).
    mask = jnp.array([[1, 0, 0], [1, 1, 1]])
    loss, _ = grpo_loss(jnp.zeros((2, 3)), jnp.zeros((2, 3)), jnp.ones((2, 3)), mask, 0.2, 0.2, budget=4.0)
    assert float(loss) == pytest.approx(-4 / 4.0)
    new, ref = jnp.log(jnp.array([[0.5]])), jnp.log(jnp.array([[0.25]]))
    loss, metrics = grpo_loss(new, new, jnp.zeros((1, 1)), jnp.ones((1, 1)), 0.2, 0.2, 1.0, kl_coef=0.1, ref_logp=ref)
    k3 = 0.5 - np.log(0.5) - 1.0  # exp(ref - new) - (ref - new) - 1 with ref/new = 0.5
    assert float(metrics["kl"]) == pytest.approx(k3, rel=1e-5) and float(loss) == pytest.approx(0.1 * k3, rel=1e-5)
