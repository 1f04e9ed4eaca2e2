"""SwiGLU feed-forward: down(silu(gate(x)) * up(x)), no biases."""

import jax
import jax.numpy as jnp
from flax import nnx

from cwm_jax.config import ModelConfig
from cwm_jax.params import param
from cwm_jax.sharding import constrain


class MLP(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs, *, stack: int | None = None):
        d, f, kw = cfg.d_model, cfg.ffn_dim, dict(dtype=jnp.dtype(cfg.param_dtype), stack=stack, std=cfg.init_std)
        self.gate = param(rngs, (d, f), ("embed", "mlp"), **kw)
        self.up = param(rngs, (d, f), ("embed", "mlp"), **kw)
        self.down = param(rngs, (f, d), ("mlp", "embed"), **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        dt = x.dtype
        h = jax.nn.silu(x @ self.gate[...].astype(dt)) * (x @ self.up[...].astype(dt))
        return constrain(h, ("batch", "length", "mlp")) @ self.down[...].astype(dt)
