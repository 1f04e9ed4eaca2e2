"""`run_rl(config, workdir)`: GRPO with sandbox rewards, asynchronous (an actor thread generates the next
batches while the learner trains) or synchronous (collect, then update: for debugging).

Batch b trains policy version b; its prompts and sampling seed depend only on b. Actors (a thread, or
`rl.actor_processes` processes: cwm_rl.actors) start batch b with weights at most `max_staleness` versions
old, so with max_staleness 0 the asynchronous run is the synchronous one. The learner publishes new weights
to the actors after every update. The RL state (params, optimizer, step) is
checkpointed like training and resumed by itself.
"""

import collections
import contextlib
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from cwm_common.config_rules import require, require_choice, require_int
from cwm_common.workdir import check_workdir
from cwm_jax.sharding import ShardingRules, batch_ways, make_mesh, on_mesh, rows_sharding
from cwm_jax.train.checkpoints import Checkpoints
from cwm_jax.train.manifest import run_manifest, write_manifest
from cwm_jax.train.metrics import MetricsLogger
from cwm_jax.train.optimizer import make_optimizer
from cwm_jax.train.state import abstract_model, abstract_state, state_from_params, state_shardings
from cwm_jax.train.step import make_train_step
from cwm_rl.actors import ProcessActors, ThreadActor
from cwm_rl.collector import initial_policy, make_collector
from cwm_rl.learner import grpo_objective, make_batch
from cwm_rl.plot import plot_rewards
from cwm_rl.sampler_layout import SamplerLayout
from cwm_rl.samples import FAILED, INFRA_FAILED, Sample
from cwm_tasks.registry import is_agent_task

RL_CONSOLE = (
    ("reward_mean", "reward {:+.3f}"),
    ("pass_rate", "pass {:.0%}"),
    ("clip_fraction", "clip {:.3f}"),
    ("staleness_mean", "stale {:.2f}"),
    ("gen_tokens_per_s", "gen {:,.0f} tok/s"),
    ("learner_tokens_per_s", "learn {:,.0f} tok/s"),
)


def check_rl_config(cfg):
    rl = cfg.rl
    for field in ("rl.prompts_per_step", "rl.group_size", "rl.max_new_tokens", "rl.max_turns", "rl.pool_size", "steps"):
        require_int(cfg, field)
    require_int(cfg, "rl.actor_processes", minimum=0)
    require_int(cfg, "rl.max_staleness", minimum=0)
    require_choice(cfg, "rl.mode", ("async", "sync"))
    require(0 <= rl.eps_low < 1, "rl.eps_low", f"must be in [0, 1), got {rl.eps_low!r}")
    require(rl.eps_high >= 0, "rl.eps_high", f"must be >= 0, got {rl.eps_high!r}")
    require(
        rl.launch_actors or (rl.mode == "async" and rl.actor_processes > 0),
        "rl.launch_actors",
        "is False: set rl.actor_processes to the number of actors you will start (and rl.mode to async)",
    )


def loss_budget(rl) -> int:
    """The GRPO loss's constant denominator: rl.budget_tokens, else the most tokens a batch's rows can generate
    (x max_turns when an agent task is drawn at all: weight > 0)."""
    if rl.budget_tokens:
        return rl.budget_tokens
    agents = any(weight > 0 and is_agent_task(name) for name, weight in rl.tasks.items())
    return rl.prompts_per_step * rl.group_size * rl.max_new_tokens * (rl.max_turns if agents else 1)


def run_rl(cfg: ml_collections.ConfigDict, workdir: str, log=print) -> dict:
    check_workdir(workdir)
    check_rl_config(cfg)
    rl = cfg.rl
    model, tokenizer = initial_policy(cfg)
    model_cfg = model.cfg
    mesh = make_mesh(cfg.mesh)
    rules = ShardingRules.with_overrides(cfg.param_rules.to_dict(), cfg.activation_rules.to_dict())
    rows = rl.prompts_per_step * rl.group_size
    check_rows(rows, cfg.grad_accum, mesh, rules)
    optimizer, schedule = make_optimizer(cfg.optimizer, cfg.steps)
    shardings = state_shardings(model_cfg, optimizer, mesh, rules)
    graphdef, abstract_params = abstract_model(model_cfg)
    sampler = SamplerLayout(abstract_params, make_mesh(rl.sampler_mesh), rules)
    checkpoints = Checkpoints(workdir, cfg.keep_checkpoints)
    # The learner's work runs on its mesh with its activation rules; generation does not (the sampler has its
    # own layout, and a sync run must generate exactly as an actor thread or process does).
    start = checkpoints.latest_step()
    with on_mesh(mesh, rules):
        if start is None:
            params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
            state = state_from_params(params, optimizer, shardings, cfg.seed)
        else:
            state = checkpoints.restore(start, abstract_state(model_cfg, optimizer, shardings), None)
            log(f"resumed RL from step {start}")
    del model  # the policy now lives on the mesh
    start = start or 0
    manifest = run_manifest(cfg, mesh, start)  # the prompt batch is the step: no data iterator
    write_manifest(workdir, manifest)
    reference = jax.tree.map(jnp.copy, state["params"]) if rl.kl_coef else None
    objective = grpo_objective(
        graphdef,
        rl.group_size,
        rl.eps_low,
        rl.eps_high,
        loss_budget(rl),
        rl.normalize_std,
        rl.kl_coef,
        rl.logprob_chunk,
    )
    row_sharding = rows_sharding(mesh, rules)
    rl_step = jax.jit(
        make_train_step(graphdef, optimizer, schedule, cfg.grad_accum, objective),
        in_shardings=(shardings, row_sharding, shardings["params"] if rl.kl_coef else None),
        out_shardings=(shardings, None),
        donate_argnums=0,
    )
    logger = MetricsLogger(workdir, cfg.steps, start, cfg.log_every, enabled=True, console=RL_CONSOLE)
    log(
        f"policy: {model_cfg.param_count():,} parameters; learner mesh {dict(mesh.shape)}, sampler mesh "
        f"{dict(sampler.mesh.shape)} on {jax.device_count()} {jax.devices()[0].device_kind} device(s)"
    )
    last_reward = None
    with contextlib.ExitStack() as stack:
        collect: Callable[[int, int, Any], tuple[list[Sample], dict]] | None = None
        actors: ProcessActors | ThreadActor | None = None
        policy = sampler.place(state["params"])
        if rl.mode == "async" and rl.actor_processes:
            actors = ProcessActors(cfg, workdir, start, start, policy, log)
        else:
            collect = stack.enter_context(make_collector(cfg, tokenizer, graphdef))
            if rl.mode == "async":
                actors = ThreadActor(collect, start, rl.max_staleness, start, policy)
        if actors:
            stack.callback(actors.stop)  # before the sandbox pool closes
        try:
            for step in range(start + 1, cfg.steps + 1):
                version = step - 1  # the policy version being trained, and the batch index
                step_start = time.perf_counter()
                if actors:
                    samples, gen = actors.take(version)
                else:
                    assert collect is not None  # without actors, this process collects
                    samples, gen = collect(version, version, policy)
                waited = time.perf_counter() - step_start
                local = make_batch(samples, rows, rl.group_size)
                batch = {k: jax.device_put(v, row_sharding) for k, v in local.items()}
                with on_mesh(mesh, rules):
                    state, metrics = rl_step(state, batch, reference)
                metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
                learn_seconds = time.perf_counter() - step_start - waited
                policy = sampler.place(state["params"])
                if actors:
                    actors.publish(step, policy)
                metrics.update(_rollout_metrics(samples, version))
                metrics.update(
                    gen_tokens_per_s=gen["generated_tokens"] / max(gen["seconds"], 1e-9),
                    episodes_per_s=len(samples) / max(gen["seconds"], 1e-9),
                    learner_tokens_per_s=float(local["mask"].sum()) / learn_seconds,
                    learner_wait_fraction=waited / (time.perf_counter() - step_start),
                    step_seconds=time.perf_counter() - step_start,
                )
                logger.log(step, metrics)
                last_reward = metrics["reward_mean"]
                if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                    checkpoints.save(step, state, None, manifest)
        finally:
            checkpoints.wait()
            checkpoints.close()
            logger.close()
    plot_rewards(os.path.join(workdir, "metrics.jsonl"), os.path.join(workdir, "reward_curve.png"))
    return {"step": cfg.steps, "reward_mean": last_reward, "state": state}


def check_rows(rows: int, grad_accum: int, mesh, rules: ShardingRules):
    """The batch's rows must split over the batch's mesh axes in every micro-batch."""
    ways = batch_ways(mesh, rules)
    require(
        rows % (ways * grad_accum) == 0,
        "rl.prompts_per_step",
        f"x rl.group_size ({rows} rows) must divide over the batch's mesh axes ({ways} ways) x grad_accum "
        f"({grad_accum})",
    )


def _rollout_metrics(samples, version: int) -> dict:
    """Rewards over the samples that count (infrastructure failures are reported, not averaged in)."""
    trained = [s for s in samples if s.trained] or samples
    rewards = np.asarray([s.reward for s in trained], np.float64)
    metrics = {
        "reward_mean": float(rewards.mean()),
        "reward_std": float(rewards.std()),
        "pass_rate": float((rewards > 0).mean()),
        "failed_samples": sum(s.status == FAILED for s in samples),
        "infra_failed_samples": sum(s.status == INFRA_FAILED for s in samples),
        "staleness_mean": float(np.mean([version - s.version for s in samples])),
        "staleness_max": max(version - s.version for s in samples),
    }
    by_task = collections.defaultdict(list)
    for s in trained:
        by_task[s.task].append(s.reward)
    for task, values in by_task.items():
        metrics[f"reward_mean/{task}"] = float(np.mean(values))
        metrics[f"reward_std/{task}"] = float(np.std(values))
    return metrics
