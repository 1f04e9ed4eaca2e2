"""What every RL actor runs, in the learner's process or its own: the starting policy, and the collector
that turns a batch index and weights into rollouts (batch b's prompts and sampling seed depend only on b)."""

import contextlib

from flax import nnx

from cwm_common.config_rules import require
from cwm_envs.pool import SandboxPool
from cwm_envs.sandbox import SandboxLimits
from cwm_envs.sandbox_factory import make_sandbox
from cwm_jax.config import EXECUTION_FIELDS, from_mapping
from cwm_jax.inference_io import check_vocab, find_tokenizer, load_model
from cwm_jax.model import CwmModel
from cwm_rl.rollouts import RolloutSettings, RolloutWorker
from cwm_rl.task_mixture import TaskMixture
from cwm_tasks.swe import AgentLimits


def initial_policy(cfg, mesh=None, rules=None):
    """The policy to start from (policy.model: any saved model, loaded onto `mesh` by `rules` when given, or
    a fresh model.*) and its tokenizer."""
    policy = cfg.policy
    if policy.model:
        model = load_model(policy.model, mesh, rules, **{name: cfg.model[name] for name in EXECUTION_FIELDS})
    else:
        model = CwmModel(from_mapping(dict(cfg.model)), nnx.Rngs(cfg.seed))
    tokenizer = find_tokenizer(
        policy.tokenizer or None, policy.model or None, how_to_give="set config field 'policy.tokenizer'"
    )
    check_vocab(model.cfg, tokenizer)
    require(
        cfg.rl.max_episode_tokens <= model.cfg.max_seq_len - 64,
        "rl.max_episode_tokens",
        f"({cfg.rl.max_episode_tokens}) must leave 64 tokens below the model's max_seq_len ({model.cfg.max_seq_len})",
    )
    return model, tokenizer


def rollout_settings(rl) -> RolloutSettings:
    """The rollout settings the `rl` config block names."""
    return RolloutSettings(
        group_size=rl.group_size,
        max_new_tokens=rl.max_new_tokens,
        temperature=rl.temperature,
        top_p=rl.top_p,
        max_turns=rl.max_turns,
        max_episode_tokens=rl.max_episode_tokens,
        tool_timeout_s=rl.tool_timeout_s,
        episode_timeout_s=rl.episode_timeout_s,
    )


@contextlib.contextmanager
def make_collector(cfg, tokenizer, graphdef, groups: range | None = None):
    """collect(batch_index, version, params) -> (samples, gen stats) of the batch's prompt `groups` (all by
    default; a process of a multi-process run collects its own), with a pool of sandboxes for rewards open for
    the duration."""
    rl = cfg.rl
    # The agent is told the budget it really has (the release's prompt names its limits).
    agent_limits = AgentLimits(rl.max_episode_tokens, rl.max_turns, rl.tool_timeout_s)
    mixture = TaskMixture(dict(rl.tasks), cfg.seed, {"swe": {"limits": agent_limits, "folder": rl.swe_tasks}})
    settings = rollout_settings(rl)
    limits = SandboxLimits(timeout_s=rl.tool_timeout_s, memory_mb=rl.sandbox_memory_mb)
    view = mixture.sandbox_view()
    with SandboxPool(lambda: make_sandbox(rl.sandbox_backend, limits, view=view), rl.pool_size) as pool:
        worker = RolloutWorker(tokenizer, pool, mixture.tasks, settings)

        def collect(batch_index: int, version: int, params):
            prompts = mixture.batch(batch_index, rl.prompts_per_step)
            mine = groups or range(len(prompts))
            return worker.collect(
                nnx.merge(graphdef, params),
                version,
                prompts[mine.start : mine.stop],
                cfg.seed * 100_003 + batch_index,
                first_group=mine.start,
            )

        yield collect
