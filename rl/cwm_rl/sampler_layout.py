"""Where the sampler's weights live: the learner's devices laid out for decoding (rl.sampler_mesh, tensor
parallel by default; a dimension that does not divide is replicated). After each update the learner's params
are resharded into it on device: no host round trip, no whole copy of the model on one device, and new
buffers, so the learner may donate its own to the next update while actors still generate."""

import jax

from cwm_jax.sharding import ShardingRules, param_shardings


class SamplerLayout:
    def __init__(self, abstract_params, mesh: jax.sharding.Mesh, rules: ShardingRules):
        self.mesh = mesh
        self.shardings = param_shardings(abstract_params, mesh, rules, replicate_indivisible=True)
        self._place = jax.jit(lambda params: params, out_shardings=self.shardings)

    def place(self, params):
        """The params, resharded for decoding (new arrays)."""
        return self._place(params)
