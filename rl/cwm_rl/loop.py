"""`run_rl(config, workdir)`: GRPO with sandbox rewards, asynchronous (an actor thread generates the next
batches while the learner trains) or synchronous (collect, then update: for debugging).

Batch b trains policy version b; its prompts and sampling seed depend only on b. Actors (a thread, or
`rl.actor_processes` processes: cwm_rl.actors) start batch b with weights at most `max_staleness` versions
old, so with max_staleness 0 the asynchronous run is the synchronous one. The learner publishes new weights
to the actors after every update. The RL state (params, optimizer, step) is
checkpointed like training and resumed by itself.
"""

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
from cwm_jax.train.batches import global_batch
from cwm_jax.train.checkpoints import Checkpoints
from cwm_jax.train.manifest import run_manifest, write_manifest
from cwm_jax.train.metrics import MetricsLogger
from cwm_jax.train.optimizer import make_optimizer
from cwm_jax.train.state import abstract_model, abstract_state, state_from_params, state_shardings
from cwm_jax.train.step import make_train_step
from cwm_rl.actors import ProcessActors, ThreadActor
from cwm_rl.collector import initial_policy, make_collector
from cwm_rl.learner import batch_length, grpo_objective, make_batch
from cwm_rl.plot import plot_rewards
from cwm_rl.process_rows import every_process, owned_rows
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
    require(
        jax.process_count() == 1 or not (rl.mode == "async" and rl.actor_processes),
        "rl.actor_processes",
        f"must be 0 in a run of {jax.process_count()} processes: each process generates its own rows",
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
    mesh = make_mesh(cfg.mesh)
    rules = ShardingRules.with_overrides(cfg.param_rules.to_dict(), cfg.activation_rules.to_dict())
    model, tokenizer = initial_policy(cfg, mesh, rules)  # a saved policy streams onto the learner's mesh
    model_cfg = model.cfg
    rows = rl.prompts_per_step * rl.group_size
    check_rows(rows, cfg.grad_accum, mesh, rules)
    row_sharding = rows_sharding(mesh, rules)
    mine = owned_rows(rows, rl.group_size, row_sharding)  # this process's rows: all of them in one process
    groups = range(mine.start // rl.group_size, mine.stop // rl.group_size)
    primary = jax.process_index() == 0
    optimizer, schedule = make_optimizer(cfg.optimizer, cfg.steps)
    shardings = state_shardings(model_cfg, optimizer, mesh, rules)
    graphdef, abstract_params = abstract_model(model_cfg)
    sampler = SamplerLayout(abstract_params, rl.sampler_mesh, rules, rl.sampler_dtype)
    checkpoints = Checkpoints(workdir, cfg.keep_checkpoints)
    # The learner's work runs on its mesh with its activation rules; generation does not (the sampler has its
    # own layout, and a sync run must generate exactly as an actor thread or process does).
    start = checkpoints.latest_intact_step(log if primary else lambda m: None)
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
    if primary:
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
    rl_step = jax.jit(
        make_train_step(graphdef, optimizer, schedule, cfg.grad_accum, objective),
        in_shardings=(shardings, row_sharding, shardings["params"] if rl.kl_coef else None),
        out_shardings=(shardings, None),
        donate_argnums=0,
    )
    logger = MetricsLogger(workdir, cfg.steps, start, cfg.log_every, enabled=primary, console=RL_CONSOLE)
    task_names = sorted(rl.tasks)
    log(
        f"policy: {model_cfg.param_count():,} parameters; learner mesh {dict(mesh.shape)}, sampler mesh "
        f"{dict(sampler.mesh.shape)} on {jax.device_count()} {jax.devices()[0].device_kind} device(s)"
    )
    if jax.process_count() > 1:
        log(f"process {jax.process_index()}: generates and grades rows {mine.start}-{mine.stop - 1} of {rows}")
    last_reward = None
    with contextlib.ExitStack() as stack:
        collect: Callable[[int, int, Any], tuple[list[Sample], dict]] | None = None
        actors: ProcessActors | ThreadActor | None = None
        policy = sampler.place(state["params"])
        if rl.mode == "async" and rl.actor_processes:
            actors = ProcessActors(cfg, workdir, start, start, policy, log)
        else:
            collect = stack.enter_context(make_collector(cfg, tokenizer, graphdef, groups))
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
                length = int(every_process(np.asarray([batch_length(samples)], np.int64)).max())  # T agreed by all
                local = make_batch(samples, len(mine), rl.group_size, length)
                batch = global_batch(local, row_sharding)
                with on_mesh(mesh, rules):
                    state, metrics = rl_step(state, batch, reference)
                metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
                learn_seconds = time.perf_counter() - step_start - waited
                policy = sampler.place(state["params"])
                if actors:
                    actors.publish(step, policy)
                table = every_process(sample_table(samples, version, task_names))
                gen_seconds = max(float(every_process(np.asarray([gen["seconds"]])).max()), 1e-9)
                metrics.update(rollout_metrics(table, task_names))
                metrics.update(
                    gen_tokens_per_s=float(table[:, MODEL_TOKENS].sum()) / gen_seconds,
                    episodes_per_s=len(table) / gen_seconds,
                    learner_tokens_per_s=float(table[:, MODEL_TOKENS].sum()) / learn_seconds,
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
    if primary:
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


# Columns of the per-sample table that every process's samples are gathered into for the metrics.
REWARD, TRAINED, FAILED_COLUMN, INFRA_FAILED_COLUMN, STALENESS, TASK, MODEL_TOKENS = range(7)


def sample_table(samples: list[Sample], version: int, task_names: list[str]) -> np.ndarray:
    return np.asarray(
        [
            (
                s.reward,
                s.trained,
                s.status == FAILED,
                s.status == INFRA_FAILED,
                version - s.version,
                task_names.index(s.task),
                s.model_tokens,
            )
            for s in samples
        ],
        np.float64,
    ).reshape(len(samples), 7)


def rollout_metrics(table: np.ndarray, task_names: list[str]) -> dict:
    """Rewards over the samples that count (infrastructure failures are reported, not averaged in)."""
    trained = table[table[:, TRAINED] > 0] if table[:, TRAINED].any() else table
    rewards = trained[:, REWARD]
    metrics = {
        "reward_mean": float(rewards.mean()),
        "reward_std": float(rewards.std()),
        "pass_rate": float((rewards > 0).mean()),
        "failed_samples": int(table[:, FAILED_COLUMN].sum()),
        "infra_failed_samples": int(table[:, INFRA_FAILED_COLUMN].sum()),
        "staleness_mean": float(table[:, STALENESS].mean()),
        "staleness_max": int(table[:, STALENESS].max()),
    }
    for index in sorted(set(trained[:, TASK].astype(int))):
        values = trained[trained[:, TASK] == index, REWARD]
        metrics[f"reward_mean/{task_names[index]}"] = float(values.mean())
        metrics[f"reward_std/{task_names[index]}"] = float(values.std())
    return metrics
