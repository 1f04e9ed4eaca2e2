"""The CWM decoder: embedding, a stack of pre-norm blocks, final norm and an untied output head."""

import jax
import jax.numpy as jnp
from flax import nnx

from cwm_jax.config import ModelConfig
from cwm_jax.decoder_layer import DecoderLayer
from cwm_jax.layer_plan import plan_layers
from cwm_jax.params import param
from cwm_jax.rms_norm import RMSNorm
from cwm_jax.rope import rotary_tables
from cwm_jax.sharding import constrain

_REMAT_POLICIES = {
    "full": None,  # save nothing inside a layer
    "save_dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def positions_from_segments(segment_ids: jax.Array) -> jax.Array:
    """Positions that restart at 0 wherever the segment id changes along a row."""
    index = jnp.broadcast_to(jnp.arange(segment_ids.shape[1]), segment_ids.shape)
    starts = jnp.concatenate(
        [jnp.ones_like(segment_ids[:, :1], bool), segment_ids[:, 1:] != segment_ids[:, :-1]], axis=1)
    return index - jax.lax.cummax(jnp.where(starts, index, 0), axis=1)


class CwmModel(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        pd = jnp.dtype(cfg.param_dtype)
        self.embed = param(rngs, (cfg.vocab_size, cfg.d_model), ("vocab", "embed"), dtype=pd, stack=None,
                           std=cfg.init_std)
        self.layers = DecoderLayer(cfg, rngs, stack=cfg.n_layers)
        self.final_norm = RMSNorm(cfg.d_model, cfg.rms_norm_eps, param_dtype=pd)
        self.lm_head = param(rngs, (cfg.d_model, cfg.vocab_size), ("embed", "vocab"), dtype=pd, stack=None,
                             std=cfg.init_std)

    def __call__(self, tokens: jax.Array, *, segment_ids: jax.Array | None = None,
                 positions: jax.Array | None = None) -> jax.Array:
        """Logits [B, T, vocab] in fp32 for int tokens [B, T].

        segment_ids [B, T] mark packed documents (no attention across them); positions default to
        restarting at 0 in each document.
        """
        if segment_ids is None:
            segment_ids = jnp.zeros(tokens.shape, jnp.int32)
        if positions is None:
            positions = positions_from_segments(segment_ids)
        dt = jnp.dtype(self.cfg.dtype)
        x = constrain(jnp.take(self.embed[...], tokens, axis=0).astype(dt), ("batch", "length", "embed"))
        x = self._run_layers(x, rotary_tables(self.cfg, positions), positions, segment_ids)
        x = self.final_norm(x)
        logits = jnp.einsum("btd,dv->btv", x, self.lm_head[...].astype(dt), preferred_element_type=jnp.float32)
        return constrain(logits, ("batch", "length", "vocab"))

    def _run_layers(self, x, rotary, positions, segments):
        cfg = self.cfg
        graphdef, stacked = nnx.split(self.layers)

        def run_layer(index: int, layer_params, x):
            def apply(layer_params, x):
                return nnx.merge(graphdef, layer_params)(x, rotary=rotary, positions=positions,
                                                         segments=segments, window=cfg.window_of(index))

            if cfg.remat != "none":
                apply = jax.checkpoint(apply, policy=_REMAT_POLICIES[cfg.remat])
            return apply(layer_params, x)

        def layer_slice(tree, i):
            return jax.tree.map(lambda a: a[i], tree)

        if not cfg.scan_layers:
            for i in range(cfg.n_layers):
                x = run_layer(i, layer_slice(stacked, i), x)
            return x

        plan = plan_layers(cfg)
        blocks = jax.tree.map(
            lambda a: a[:plan.n_blocks * plan.period].reshape(plan.n_blocks, plan.period, *a.shape[1:]), stacked)

        def block(x, block_params):
            # Position k of every block has the attention type of layer k.
            for k in range(plan.period):
                x = run_layer(k, layer_slice(block_params, k), x)
            return x, None

        x, _ = jax.lax.scan(block, x, blocks)
        for i in plan.tail:
            x = run_layer(i, layer_slice(stacked, i), x)
        return x
