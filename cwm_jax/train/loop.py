"""`train(config, workdir)`: the training loop, resuming from the workdir's latest checkpoint by itself."""

import signal
import time

import jax
import ml_collections
import numpy as np

from cwm_common.workdir import check_workdir
from cwm_jax.sharding import ShardingRules, data_sharding, local_batch_size, make_mesh, on_mesh
from cwm_jax.train.batches import global_batch, make_batches
from cwm_jax.train.checkpoints import Checkpoints
from cwm_jax.train.config_check import check_train_config
from cwm_jax.train.flops import flops_per_token, peak_flops_per_device
from cwm_jax.train.manifest import checkpoint_manifest, run_manifest, write_manifest
from cwm_jax.train.metrics import MetricsLogger
from cwm_jax.train.optimizer import make_optimizer
from cwm_jax.train.profiling import StepProfiler
from cwm_jax.train.state import abstract_model, abstract_state, create_state, state_shardings
from cwm_jax.train.step import make_train_step, next_token_objective


def data_checksum(tokens: np.ndarray) -> int:
    """A fingerprint of this process's batch (token values and their order), to compare runs' data."""
    weights = np.arange(1, tokens.size + 1, dtype=np.int64).reshape(tokens.shape)
    return int(np.sum(tokens.astype(np.int64) * weights) % (2**31 - 1))


class _StopRequest:
    """SIGTERM (preemption) asks the loop to checkpoint and stop after the step in flight."""

    def __init__(self):
        self.requested = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        self.requested = True

    def restore(self):
        signal.signal(signal.SIGTERM, self._previous)


def train(cfg: ml_collections.ConfigDict, workdir: str, log=print) -> dict:
    """Trains to cfg.steps; returns {"step", "loss", "stopped_early"}."""
    check_workdir(workdir)
    model_cfg = check_train_config(cfg)
    mesh = make_mesh(cfg.mesh)
    rules = ShardingRules.with_overrides(cfg.param_rules.to_dict(), cfg.activation_rules.to_dict())
    local_batch = local_batch_size(cfg.batch_size, mesh, rules)
    optimizer, schedule = make_optimizer(cfg.optimizer, cfg.steps)
    shardings = state_shardings(model_cfg, optimizer, mesh, rules)
    batches = make_batches(cfg, workdir, local_batch)
    checkpoints = Checkpoints(workdir, cfg.keep_checkpoints)
    primary = jax.process_index() == 0
    seq_len = cfg.data.seq_len
    with on_mesh(mesh, rules):
        start = checkpoints.latest_intact_step(log if primary else lambda m: None)
        if start is None:
            state, start = create_state(model_cfg, optimizer, shardings, cfg.seed), 0
        else:
            state = checkpoints.restore(start, abstract_state(model_cfg, optimizer, shardings), batches)
            if primary:
                log(f"resumed from step {start}")
        manifest = run_manifest(cfg, mesh, start, batches)
        if primary:
            write_manifest(workdir, manifest)
        batch_sharding = data_sharding(mesh, rules)
        graphdef, _ = abstract_model(model_cfg)
        step_fn = jax.jit(
            make_train_step(graphdef, optimizer, schedule, cfg.grad_accum, next_token_objective(cfg.z_loss)),
            in_shardings=(shardings, batch_sharding),
            out_shardings=(shardings, None),
            donate_argnums=0,
        )
        logger = MetricsLogger(workdir, cfg.steps, start, cfg.log_every, enabled=primary)
        token_flops, peak = flops_per_token(model_cfg, seq_len), peak_flops_per_device(cfg.peak_flops_per_device)
        if primary:
            log(
                f"model: {model_cfg.param_count():,} parameters; mesh {dict(mesh.shape)} on {jax.device_count()} "
                f"{jax.devices()[0].device_kind} device(s); {cfg.batch_size} x {seq_len} tokens per step"
            )
        stop = _StopRequest()
        profiler = StepProfiler(workdir, cfg.profile_start_step, cfg.profile_steps, log if primary else lambda m: None)
        loss, step = float("nan"), start
        try:
            last = time.perf_counter()
            for step in range(start + 1, cfg.steps + 1):
                local = next(batches)
                batch = global_batch(local, batch_sharding)
                profiler.before(step)
                state, metrics = step_fn(state, batch)
                metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
                now = time.perf_counter()
                tokens_per_s = cfg.batch_size * seq_len / (now - last)
                last = now
                metrics["tokens_per_s"] = tokens_per_s
                metrics["data_checksum"] = data_checksum(local["tokens"])
                metrics["mfu"] = tokens_per_s * token_flops / (peak * jax.device_count()) if peak else None
                logger.log(step, metrics)
                profiler.after(step, state)
                loss = metrics["loss"]
                if step % cfg.checkpoint_every == 0 or step == cfg.steps or stop.requested:
                    checkpoints.save(step, state, batches, checkpoint_manifest(manifest, batches))
                if stop.requested:
                    if primary:
                        log(f"SIGTERM: checkpointed step {step} and stopped")
                    break
        finally:
            profiler.stop(state)
            stop.restore()
            checkpoints.wait()
            checkpoints.close()
            logger.close()
    return {"step": step, "loss": loss, "stopped_early": stop.requested, "state": state}
