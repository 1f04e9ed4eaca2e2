"""Where the sampler's weights live: each process's own devices laid out for decoding (rl.sampler_mesh,
tensor parallel by default; a dimension that does not divide is replicated), in the sampler's dtype. After
each update the learner's params are resharded into it on device: no host round trip, no whole copy of the
model on one device, and new buffers, so the learner may donate its own to the next update while actors
still generate. In a multi-process run every process gets a full replica on its own devices (the reshard
gathers across processes once), so each generates its own rows with no cross-process traffic."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding

from cwm_jax.sharding import MESH_AXES, ShardingRules, make_mesh, param_shardings

REPLICA = "replica"  # the axis over processes: one decoding replica per process


class SamplerLayout:
    def __init__(self, abstract_params, mesh_spec, rules: ShardingRules, dtype: str):
        per_process = [
            make_mesh(mesh_spec, [d for d in jax.devices() if d.process_index == p]).devices
            for p in range(jax.process_count())
        ]
        self.mesh = Mesh(per_process[jax.process_index()], MESH_AXES)  # this process's decoding mesh
        self.dtype = jnp.dtype(dtype)
        self.shardings = param_shardings(abstract_params, self.mesh, rules, replicate_indivisible=True)
        shapes = nnx.to_pure_dict(abstract_params)
        self.abstract = jax.tree.map(
            lambda leaf, sharding: jax.ShapeDtypeStruct(leaf.shape, self.dtype, sharding=sharding),
            shapes,
            self.shardings,
        )
        if len(per_process) == 1:
            targets = self.shardings
        else:
            replicas = Mesh(np.stack(per_process), (REPLICA, *MESH_AXES))
            targets = jax.tree.map(lambda s: NamedSharding(replicas, s.spec), self.shardings)
        self._place = jax.jit(
            lambda params: jax.tree.map(lambda x: x.astype(self.dtype), params), out_shardings=targets
        )

    def place(self, params):
        """The params, resharded for decoding (new arrays on this process's devices). In a multi-process run
        every process calls it together."""
        placed = self._place(params)
        if jax.process_count() == 1:
            return placed
        return jax.tree.map(
            lambda x, sharding: jax.make_array_from_single_device_arrays(
                x.shape, sharding, [shard.data for shard in x.addressable_shards]
            ),
            placed,
            self.shardings,
        )
