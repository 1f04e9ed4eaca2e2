"""`run_rl(config, workdir)`: GRPO with sandbox rewards, asynchronous (an actor thread generates with policy
version v while the learner trains) or synchronous (collect, then update: for debugging).

Rollouts older than `max_staleness` policy versions are dropped. The learner publishes new weights to the
actors after every update (in this process; `DirectoryWeights` serves actors elsewhere). The RL state
(params, optimizer, step, prompt stream position) is checkpointed like training and resumed by itself.
"""

import collections
import os
import queue
import threading
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from cwm_common.errors import CwmError
from cwm_envs.pool import SandboxPool
from cwm_envs.sandbox import SandboxLimits, make_sandbox
from cwm_jax.config import from_mapping
from cwm_jax.inference_io import check_vocab, find_tokenizer, load_inference_model
from cwm_jax.model import CwmModel
from cwm_jax.train.checkpoints import Checkpoints
from cwm_jax.train.manifest import run_manifest
from cwm_jax.train.metrics import MetricsLogger
from cwm_jax.train.optimizer import make_optimizer
from cwm_jax.sharding import make_mesh
from cwm_rl.learner import make_batch, make_rl_step
from cwm_rl.plot import plot_rewards
from cwm_rl.rollouts import RolloutSettings, RolloutWorker
from cwm_rl.samples import FAILED
from cwm_rl.tasks import TaskMixture
from cwm_rl.weight_channels import InProcessWeights

RL_CONSOLE = (("reward_mean", "reward {:+.3f}"), ("pass_rate", "pass {:.0%}"), ("clip_fraction", "clip {:.3f}"),
              ("staleness_mean", "stale {:.2f}"), ("gen_tokens_per_s", "gen {:,.0f} tok/s"),
              ("learner_tokens_per_s", "learn {:,.0f} tok/s"))


def check_rl_config(cfg):
    rl = cfg.rl
    for field in ("prompts_per_step", "group_size", "max_new_tokens", "max_turns", "pool_size"):
        if not isinstance(rl[field], int) or rl[field] < 1:
            raise CwmError(f"config field 'rl.{field}' must be an integer >= 1, got {rl[field]!r}")
    if rl.mode not in ("async", "sync"):
        raise CwmError(f"config field 'rl.mode' is {rl.mode!r}; allowed: async, sync")
    if not 0 <= rl.eps_low < 1 or rl.eps_high < 0:
        raise CwmError("config fields 'rl.eps_low' must be in [0, 1) and 'rl.eps_high' >= 0")
    if rl.max_staleness < 0:
        raise CwmError(f"config field 'rl.max_staleness' must be >= 0, got {rl.max_staleness}")
    if not isinstance(cfg.steps, int) or cfg.steps < 1:
        raise CwmError(f"config field 'steps' must be an integer >= 1, got {cfg.steps!r}")


def initial_policy(cfg):
    """The policy to start from (a checkpoint, an HF directory, or a fresh preset) and its tokenizer."""
    policy = cfg.policy
    if policy.checkpoint or policy.hf:
        model = load_inference_model(policy.checkpoint or None, policy.hf or None)
    else:
        model = CwmModel(from_mapping(dict(cfg.model)), nnx.Rngs(cfg.seed))
    tokenizer = find_tokenizer(policy.tokenizer or None, policy.checkpoint or policy.hf or None)
    check_vocab(model.cfg, tokenizer)
    if cfg.rl.max_episode_tokens > model.cfg.max_seq_len - 64:
        raise CwmError(f"config field 'rl.max_episode_tokens' ({cfg.rl.max_episode_tokens}) must leave 64 tokens "
                       f"below the model's max_seq_len ({model.cfg.max_seq_len})")
    return model, tokenizer


def run_rl(cfg: ml_collections.ConfigDict, workdir: str, log=print) -> dict:
    check_rl_config(cfg)
    rl = cfg.rl
    model, tokenizer = initial_policy(cfg)
    graphdef, params = nnx.split(model)
    params = nnx.to_pure_dict(params)
    optimizer, schedule = make_optimizer(cfg.optimizer, cfg.steps)
    mixture = TaskMixture(dict(rl.tasks), cfg.seed)
    checkpoints = Checkpoints(workdir, cfg.keep_checkpoints)
    manifest = run_manifest(cfg, make_mesh({"data": -1}))
    state = {"params": params, "opt_state": optimizer.init(params), "step": jnp.zeros((), jnp.int32),
             "rng": jax.random.PRNGKey(cfg.seed)}
    start = checkpoints.latest_step()
    if start is not None:
        abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), state)
        state = checkpoints.restore(start, abstract, mixture)
        log(f"resumed RL from step {start}")
    start = start or 0
    reference = params if rl.kl_coef else None
    rows = rl.prompts_per_step * rl.group_size
    budget = rl.budget_tokens or rows * rl.max_new_tokens * (rl.max_turns if "swe" in rl.tasks else 1)
    rl_step = make_rl_step(graphdef, optimizer, rl.group_size, rl.eps_low, rl.eps_high, budget, rl.normalize_std,
                           rl.kl_coef)
    settings = RolloutSettings(rl.group_size, rl.max_new_tokens, rl.temperature, rl.top_p, rl.max_turns,
                               rl.max_episode_tokens, rl.tool_timeout_s)
    limits = SandboxLimits(timeout_s=rl.tool_timeout_s, memory_mb=rl.sandbox_memory_mb)
    weights = InProcessWeights(start, state["params"])
    logger = MetricsLogger(workdir, cfg.steps, start, cfg.log_every, enabled=True, console=RL_CONSOLE)
    stats = collections.defaultdict(float)
    with SandboxPool(lambda: make_sandbox(rl.sandbox_backend, limits), rl.pool_size) as pool:
        worker = RolloutWorker(tokenizer, pool, mixture.tasks, settings)
        actor = _Actor(worker, weights, graphdef, mixture, rl.prompts_per_step, cfg.seed) if rl.mode == "async" else None
        if actor:
            actor.start()
        try:
            for step in range(start + 1, cfg.steps + 1):
                version = step - 1  # the policy version being trained
                if actor:
                    samples, gen = actor.take(rl.prompts_per_step * rl.group_size, version - rl.max_staleness,
                                              rl.group_size)
                else:
                    prompts = mixture.draw(rl.prompts_per_step)
                    samples, gen = worker.collect(nnx.merge(graphdef, state["params"]), version, prompts,
                                                  cfg.seed * 100_003 + step)
                learn_start = time.perf_counter()
                batch = make_batch(samples, rows, rl.group_size)
                state, metrics = rl_step(state, batch, reference)
                metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
                learn_seconds = time.perf_counter() - learn_start
                weights.publish(step, state["params"])
                metrics.update(_rollout_metrics(samples, version))
                metrics.update(gen_tokens_per_s=gen["generated_tokens"] / max(gen["seconds"], 1e-9),
                               learner_tokens_per_s=float(batch["mask"].sum()) / learn_seconds,
                               lr=float(schedule(step - 1)), dropped_stale=gen.get("dropped_stale", 0))
                logger.log(step, metrics)
                stats["last_reward"] = metrics["reward_mean"]
                if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                    checkpoints.save(step, state, mixture, manifest)
        finally:
            if actor:
                actor.stop()
            checkpoints.wait()
            checkpoints.close()
            logger.close()
    plot_rewards(os.path.join(workdir, "metrics.jsonl"), os.path.join(workdir, "reward_curve.png"))
    return {"step": cfg.steps, "reward_mean": stats["last_reward"], "state": state}


def _rollout_metrics(samples, version: int) -> dict:
    rewards = np.asarray([s.reward for s in samples], np.float64)
    metrics = {"reward_mean": float(rewards.mean()), "reward_std": float(rewards.std()),
               "pass_rate": float((rewards > 0).mean()), "failed_samples": sum(s.status == FAILED for s in samples),
               "staleness_mean": float(np.mean([version - s.version for s in samples])),
               "staleness_max": max(version - s.version for s in samples)}
    by_task = collections.defaultdict(list)
    for s in samples:
        by_task[s.task].append(s.reward)
    for task, values in by_task.items():
        metrics[f"reward_mean/{task}"] = float(np.mean(values))
        metrics[f"reward_std/{task}"] = float(np.std(values))
    return metrics


class _Actor:
    """Generates groups with the latest published weights in a background thread."""

    def __init__(self, worker: RolloutWorker, weights: InProcessWeights, graphdef, mixture: TaskMixture,
                 prompts_per_batch: int, seed: int):
        self.worker, self.weights, self.graphdef, self.mixture = worker, weights, graphdef, mixture
        self.prompts_per_batch, self.seed = prompts_per_batch, seed
        self.queue: queue.Queue = queue.Queue(maxsize=2)  # bounded: the actor stays at most ~2 batches ahead
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None
        self.pending: list = []

    def start(self):
        self.thread.start()

    def _run(self):
        batch = 0
        try:
            while not self.stopping.is_set():
                version, params = self.weights.latest()
                prompts = self.mixture.draw(self.prompts_per_batch)
                samples, gen = self.worker.collect(nnx.merge(self.graphdef, params), version, prompts,
                                                   self.seed * 100_003 + 7 * batch)
                batch += 1
                while not self.stopping.is_set():
                    try:
                        self.queue.put((samples, gen), timeout=0.5)
                        break
                    except queue.Full:
                        continue
        except BaseException as e:  # surfaced in take()
            self.error = e

    def take(self, count: int, oldest_version: int, group_size: int):
        """`count` samples (whole groups) no older than oldest_version; stale groups are dropped."""
        samples, generated, seconds, dropped = [], 0, 0.0, 0
        while len(samples) < count:
            if self.error:
                raise self.error
            try:
                batch, gen = self.queue.get(timeout=1.0)
            except queue.Empty:
                continue
            generated += gen["generated_tokens"]
            seconds += gen["seconds"]
            for g in range(0, len(batch), group_size):
                group = batch[g:g + group_size]
                if group[0].version < oldest_version:
                    dropped += len(group)
                elif len(samples) < count:
                    samples += group
        return samples, {"generated_tokens": generated, "seconds": seconds, "dropped_stale": dropped}

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=600)
