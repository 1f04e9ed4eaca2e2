"""SwiGLU feed-forward: down(silu(gate(x)) * up(x)), no biases."""

import jax
import jax.numpy as jnp
from flax import nnx

from cwm_jax.config import ModelConfig
from cwm_jax.params import param
from cwm_jax.sharding import constrain


class MLP(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs, *, stack: int | None = None):
        d, f, dtype, std = cfg.d_model, cfg.ffn_dim, jnp.dtype(cfg.param_dtype), cfg.init_std
        self.gate = param(rngs, (d, f), ("embed", "mlp"), dtype=dtype, stack=stack, std=std)
        self.up = param(rngs, (d, f), ("embed", "mlp"), dtype=dtype, stack=stack, std=std)
        self.down = param(rngs, (f, d), ("mlp", "embed"), dtype=dtype, stack=stack, std=std)

    def __call__(self, x: jax.Array) -> jax.Array:
        dt = x.dtype
        h = jax.nn.silu(x @ self.gate[...].astype(dt)) * (x @ self.up[...].astype(dt))
        return constrain(h, ("batch", "length", "mlp")) @ self.down[...].astype(dt)
