"""Ahead-of-time memory plan: compile a preset's train step for a target mesh on simulated devices and
report what each device must hold (parameters, optimizer state, activations), before paying for hardware.

Parameter and optimizer bytes come from the shardings (exact); activation bytes are XLA's temporary
buffers for the compiled step (`memory_analysis`), which is what the CPU compiler plans; accelerator
compilers fuse differently, so treat that part as an estimate.
"""

import dataclasses
import math
import time

import jax
import jax.numpy as jnp

from cwm_common.errors import CwmError
from cwm_jax.config import ModelConfig
from cwm_jax.sharding import ShardingRules, data_sharding, make_mesh, on_mesh
from cwm_jax.train.optimizer import cwm_optimizer_config, make_optimizer
from cwm_jax.train.state import abstract_model, abstract_state, state_shardings
from cwm_jax.train.step import Objective, make_train_step, next_token_objective

GIB = 2**30


@dataclasses.dataclass
class MemoryPlan:
    mesh: dict
    params_gib: float  # per device
    optimizer_gib: float
    activations_gib: float  # XLA temporaries of the step
    total_gib: float
    compile_s: float

    def table(self, device_memory_gib: float | None = None) -> str:
        rows = [
            ("parameters", self.params_gib),
            ("optimizer state", self.optimizer_gib),
            ("activations and temporaries", self.activations_gib),
            ("total per device", self.total_gib),
        ]
        text = "\n".join(f"  {name:<28} {gib:9.2f} GiB" for name, gib in rows)
        if device_memory_gib:
            verdict = "fits" if self.total_gib <= device_memory_gib else "does NOT fit"
            text += f"\n  {verdict} in {device_memory_gib:g} GiB per device"
        return f"mesh {self.mesh} (compiled in {self.compile_s:.0f}s)\n{text}"


def per_device_bytes(tree) -> int:
    """Bytes one device holds of abstract or placed arrays with shardings."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        shard = leaf.sharding.shard_shape(leaf.shape)
        total += math.prod(shard) * jnp.dtype(leaf.dtype).itemsize
    return total


def plan_memory(
    model_cfg: ModelConfig,
    mesh_spec: dict,
    batch_size: int,
    seq_len: int,
    grad_accum: int = 1,
    devices: list | None = None,
) -> MemoryPlan:
    """The pretraining/SFT step: next-token loss on [batch, seq_len] token batches."""
    mesh = make_mesh(mesh_spec, devices if devices is not None else jax.devices())
    rules = ShardingRules()
    batch_spec = data_sharding(mesh, rules)
    batch = {
        k: jax.ShapeDtypeStruct((batch_size, seq_len), jnp.int32, sharding=batch_spec)
        for k in ("tokens", "segment_ids", "positions", "loss_mask")
    }
    return plan_step(model_cfg, mesh, rules, next_token_objective(0.0), batch, grad_accum)


def plan_step(
    model_cfg: ModelConfig, mesh, rules: ShardingRules, objective: Objective, batch: dict, grad_accum: int, *extra
) -> MemoryPlan:
    """Compiles the trainer's update step with `objective` for abstract `batch` arrays (with shardings) and
    reads what each device holds. `extra`: the objective's further step arguments (abstract, or None)."""
    optimizer, schedule = make_optimizer(cwm_optimizer_config(peak_lr=1e-4, warmup_steps=10), 1000)
    with on_mesh(mesh, rules):
        shardings = state_shardings(model_cfg, optimizer, mesh, rules)
        state = abstract_state(model_cfg, optimizer, shardings)
        graphdef, _ = abstract_model(model_cfg)
        step = jax.jit(
            make_train_step(graphdef, optimizer, schedule, grad_accum, objective),
            out_shardings=(shardings, None),
            donate_argnums=0,
        )
        start = time.perf_counter()
        compiled = step.lower(state, batch, *extra).compile()
        compile_s = time.perf_counter() - start
    analysis = compiled.memory_analysis()
    if analysis is None:
        raise CwmError(f"the {jax.default_backend()} compiler reports no memory analysis for the train step")
    params = per_device_bytes(state["params"])
    optimizer_bytes = per_device_bytes(state["opt_state"])
    temps = analysis.temp_size_in_bytes
    total = analysis.argument_size_in_bytes + temps + analysis.output_size_in_bytes - analysis.alias_size_in_bytes
    return MemoryPlan(dict(mesh.shape), params / GIB, optimizer_bytes / GIB, temps / GIB, total / GIB, compile_s)
