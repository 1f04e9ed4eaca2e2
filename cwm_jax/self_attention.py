"""Grouped-query self-attention with rotary embeddings and no biases."""

import jax
import jax.numpy as jnp
from flax import nnx

from cwm_jax.attention import ATTENTION_IMPLS
from cwm_jax.attention.layout import KV_AXES, Q_AXES
from cwm_jax.attention.paged import PAGED_ATTENTION_IMPLS
from cwm_jax.config import ModelConfig
from cwm_jax.kv_cache import write_pages
from cwm_jax.params import param
from cwm_jax.rope import apply_rotary
from cwm_jax.sharding import constrain


class SelfAttention(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs, *, stack: int | None = None):
        self.cfg = cfg
        d, h, kv, hd = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        dtype, std = jnp.dtype(cfg.param_dtype), cfg.init_std
        self.q = param(rngs, (d, h, hd), ("embed", "heads", "head_dim"), dtype=dtype, stack=stack, std=std)
        self.k = param(rngs, (d, kv, hd), ("embed", "kv_heads", "head_dim"), dtype=dtype, stack=stack, std=std)
        self.v = param(rngs, (d, kv, hd), ("embed", "kv_heads", "head_dim"), dtype=dtype, stack=stack, std=std)
        self.o = param(rngs, (h, hd, d), ("heads", "head_dim", "embed"), dtype=dtype, stack=stack, std=std)

    def _qkv(self, x, rotary):
        dt = x.dtype
        q = constrain(jnp.einsum("btd,dhk->bthk", x, self.q[...].astype(dt)), Q_AXES)
        k = constrain(jnp.einsum("btd,dhk->bthk", x, self.k[...].astype(dt)), KV_AXES)
        v = constrain(jnp.einsum("btd,dhk->bthk", x, self.v[...].astype(dt)), KV_AXES)
        return apply_rotary(q, *rotary), apply_rotary(k, *rotary), v

    def _out(self, attended):
        return jnp.einsum("bthk,hkd->btd", constrain(attended, Q_AXES), self.o[...].astype(attended.dtype))

    def __call__(
        self,
        x: jax.Array,
        *,
        rotary: tuple[jax.Array, jax.Array],
        positions: jax.Array,
        segments: jax.Array,
        window: int | None,
    ) -> jax.Array:
        q, k, v = self._qkv(x, rotary)
        out = ATTENTION_IMPLS[self.cfg.attention_impl](
            q,
            k,
            v,
            q_positions=positions,
            kv_positions=positions,
            q_segments=segments,
            kv_segments=segments,
            window=window,
            block_size=self.cfg.attention_block_size,
        )
        return self._out(out)

    def extend(
        self,
        x: jax.Array,
        *,
        rotary,
        positions: jax.Array,
        kv: tuple[jax.Array, jax.Array],
        block: jax.Array | int | None,
        write_index: jax.Array,
        table: jax.Array,
        kv_positions: jax.Array,
        window: int | None,
    ):
        """Attention of new tokens over this layer's page pools (cwm_jax/kv_cache.py; `block` indexes a stack
        of them, None when they are this layer's alone), which they are first written into at `write_index`.
        Returns (output, (K pools, V pools))."""
        q, k, v = self._qkv(x, rotary)
        pool_k, pool_v = write_pages(*kv, k, v, write_index, block)
        out = PAGED_ATTENTION_IMPLS[self.cfg.attention_impl](
            q,
            pool_k,
            pool_v,
            block=block,
            table=table,
            kv_positions=kv_positions,
            q_positions=positions,
            window=window,
            block_size=self.cfg.attention_block_size,
        )
        return self._out(out), (pool_k, pool_v)
