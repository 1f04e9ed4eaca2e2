"""One pre-norm decoder block: x + attn(norm(x)), then h + mlp(norm(h))."""

import jax
import jax.numpy as jnp
from flax import nnx

from cwm_jax.config import ModelConfig
from cwm_jax.mlp import MLP
from cwm_jax.rms_norm import RMSNorm
from cwm_jax.self_attention import SelfAttention
from cwm_jax.sharding import constrain


class DecoderLayer(nnx.Module):
    """Parameters carry a leading `layers` axis of size `stack`; __call__ runs one slice of them."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs, *, stack: int | None = None):
        pd = jnp.dtype(cfg.param_dtype)
        self.attn_norm = RMSNorm(cfg.d_model, cfg.rms_norm_eps, param_dtype=pd, stack=stack)
        self.attn = SelfAttention(cfg, rngs, stack=stack)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.rms_norm_eps, param_dtype=pd, stack=stack)
        self.mlp = MLP(cfg, rngs, stack=stack)

    def __call__(self, x: jax.Array, *, rotary, positions, segments, window: int | None) -> jax.Array:
        h = x + self.attn(self.attn_norm(x), rotary=rotary, positions=positions, segments=segments, window=window)
        return constrain(h + self.mlp(self.mlp_norm(h)), ("batch", "length", "embed"))

    def extend(
        self, x: jax.Array, *, rotary, positions, kv, block, write_index, table, kv_positions, window: int | None
    ):
        """The same block for new tokens against the page pools; returns (x, updated (K, V) pools)."""
        attended, kv = self.attn.extend(
            self.attn_norm(x),
            rotary=rotary,
            positions=positions,
            kv=kv,
            block=block,
            write_index=write_index,
            table=table,
            kv_positions=kv_positions,
            window=window,
        )
        h = x + attended
        return h + self.mlp(self.mlp_norm(h)), kv
