"""Ahead-of-time memory plan of an RL run (`cwm plan --rl`): the learner's GRPO step compiled for the target
mesh on simulated devices (cwm_jax/aot_plan.py), and what the sampler holds on each device: its params in
the decoding layout and the KV cache of the rows it generates."""

import dataclasses

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding

from cwm_jax.aot_plan import GIB, MemoryPlan, per_device_bytes, plan_step
from cwm_jax.config import ModelConfig
from cwm_jax.kv_cache import init_pools, kv_axes, sequence_layout
from cwm_jax.sharding import ShardingRules, make_mesh, rows_sharding, spec_for
from cwm_jax.train.state import abstract_model
from cwm_rl.learner import grpo_objective
from cwm_rl.sampler_layout import SamplerLayout


@dataclasses.dataclass
class RLMemoryPlan:
    learner: MemoryPlan
    sampler_mesh: dict
    sampler_params_gib: float  # per device, in the sampler's dtype
    kv_cache_gib: float  # per device, for every row at the full episode length

    def table(self, device_memory_gib: float | None = None) -> str:
        sampler_total = self.sampler_params_gib + self.kv_cache_gib
        lines = [
            "learner (GRPO step): " + self.learner.table(device_memory_gib),
            f"sampler: mesh {self.sampler_mesh}",
            f"  {'parameters':<28} {self.sampler_params_gib:9.2f} GiB",
            f"  {'KV cache':<28} {self.kv_cache_gib:9.2f} GiB",
            f"  {'total per device':<28} {sampler_total:9.2f} GiB",
            f"colocated (learner + sampler): {self.learner.total_gib + sampler_total:.2f} GiB per device",
        ]
        if device_memory_gib:
            fits = self.learner.total_gib + sampler_total <= device_memory_gib
            lines.append(f"  {'fits' if fits else 'does NOT fit'} in {device_memory_gib:g} GiB per device")
        return "\n".join(lines)


def plan_rl_memory(
    model_cfg: ModelConfig,
    mesh_spec: dict,
    sampler_mesh_spec: dict,
    rows: int,
    episode_tokens: int,
    grad_accum: int = 1,
    logprob_chunk: int = 512,
    sampler_dtype: str = "bfloat16",
    devices: list | None = None,
) -> RLMemoryPlan:
    devices = devices if devices is not None else jax.devices()
    rules = ShardingRules()
    mesh = make_mesh(mesh_spec, devices)
    sharding = rows_sharding(mesh, rules)
    row_arrays = {"tokens": jnp.int32, "segments": jnp.int32}
    target_arrays = {"mask": jnp.float32, "old_logp": jnp.float32, "rewards": jnp.float32}
    batch = {k: jax.ShapeDtypeStruct((rows, episode_tokens), t, sharding=sharding) for k, t in row_arrays.items()}
    batch |= {
        k: jax.ShapeDtypeStruct((rows, episode_tokens - 1), t, sharding=sharding) for k, t in target_arrays.items()
    }
    batch["trained"] = jax.ShapeDtypeStruct((rows,), jnp.float32, sharding=sharding)
    graphdef, abstract_params = abstract_model(model_cfg)
    # The group size only shapes the advantages, not memory: one group of all rows.
    objective = grpo_objective(graphdef, rows, 0.2, 0.28, rows * episode_tokens, False, 0.0, logprob_chunk)
    learner = plan_step(model_cfg, mesh, rules, objective, batch, grad_accum, None)

    layout = SamplerLayout(abstract_params, sampler_mesh_spec, rules, sampler_dtype)
    sampler_mesh = layout.mesh
    mesh_shape = dict(sampler_mesh.shape)

    def placed(array, axes):
        spec = spec_for(axes, rules.activations, mesh_shape, array.shape, "KV cache", True)
        return jax.ShapeDtypeStruct(array.shape, array.dtype, sharding=NamedSharding(sampler_mesh, spec))

    # The engine's page pools, exactly big enough for every row at the full episode length.
    cache = jax.eval_shape(lambda: init_pools(model_cfg, sequence_layout(model_cfg, episode_tokens, rows)))
    cache = jax.tree.map(lambda leaf: placed(leaf, kv_axes(leaf.ndim - 4)), cache)
    kv_bytes = per_device_bytes(cache)
    return RLMemoryPlan(learner, mesh_shape, per_device_bytes(layout.abstract) / GIB, kv_bytes / GIB)
