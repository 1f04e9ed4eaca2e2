"""The CWM decoder: embedding, a stack of pre-norm blocks, final norm and an untied output head."""

import jax
import jax.numpy as jnp
from flax import nnx

from cwm_jax.config import ModelConfig
from cwm_jax.decoder_layer import DecoderLayer
from cwm_jax.kv_cache import StepView
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
        [jnp.ones_like(segment_ids[:, :1], bool), segment_ids[:, 1:] != segment_ids[:, :-1]], axis=1
    )
    return index - jax.lax.cummax(jnp.where(starts, index, 0), axis=1)


def head_logits(hidden: jax.Array, lm_head: jax.Array) -> jax.Array:
    """The output head: fp32 logits [B, T, vocab] of hidden states [B, T, d] and the head kernel [d, vocab]."""
    logits = jnp.einsum("btd,dv->btv", hidden, lm_head.astype(hidden.dtype), preferred_element_type=jnp.float32)
    return constrain(logits, ("batch", "length", "vocab"))


class CwmModel(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        pd = jnp.dtype(cfg.param_dtype)
        self.embed = param(
            rngs, (cfg.vocab_size, cfg.d_model), ("vocab", "embed"), dtype=pd, stack=None, std=cfg.init_std
        )
        self.layers = DecoderLayer(cfg, rngs, stack=cfg.n_layers)
        self.final_norm = RMSNorm(cfg.d_model, cfg.rms_norm_eps, param_dtype=pd)
        self.lm_head = param(
            rngs, (cfg.d_model, cfg.vocab_size), ("embed", "vocab"), dtype=pd, stack=None, std=cfg.init_std
        )

    def __call__(
        self, tokens: jax.Array, *, segment_ids: jax.Array | None = None, positions: jax.Array | None = None
    ) -> jax.Array:
        """Logits [B, T, vocab] in fp32 for int tokens [B, T].

        segment_ids [B, T] mark packed documents (no attention across them); positions default to
        restarting at 0 in each document.
        """
        return self.head(self.hidden(tokens, segment_ids=segment_ids, positions=positions))

    def hidden(
        self, tokens: jax.Array, *, segment_ids: jax.Array | None = None, positions: jax.Array | None = None
    ) -> jax.Array:
        """The final-normed hidden states [B, T, d] the output head reads (chunked log-probs apply the head
        a piece at a time: cwm_jax/loss.py)."""
        if segment_ids is None:
            segment_ids = jnp.zeros(tokens.shape, jnp.int32)
        if positions is None:
            positions = positions_from_segments(segment_ids)
        rotary = rotary_tables(self.cfg, positions)

        def layer_fn(index, layer, x, state, block):
            return layer(
                x, rotary=rotary, positions=positions, segments=segment_ids, window=self.cfg.window_of(index)
            ), state

        x, _ = self._run_layers(self._embed(tokens), layer_fn)
        return self.final_norm(x)

    def head(self, hidden: jax.Array) -> jax.Array:
        """Logits [B, T, vocab] in fp32 of final-normed hidden states."""
        return head_logits(hidden, self.lm_head[...])

    def extend(self, tokens: jax.Array, positions: jax.Array, pools: dict, view: StepView):
        """Runs new tokens [B, C] at `positions` against the paged KV cache (cwm_jax/kv_cache.py: the pools and
        the step's view of the sequences' tables) and returns (final-normed hidden states [B, C, d], updated
        pools); `head` turns the ones needed into logits. Padding tokens are computed, never kept (the view
        writes them nowhere)."""
        rotary = rotary_tables(self.cfg, positions)

        def layer_fn(index, layer, x, kv, block):
            kind = self.cfg.layer_types[index]
            return layer.extend(
                x,
                rotary=rotary,
                positions=positions,
                kv=kv,
                block=block,
                write_index=view.write_index[kind],
                table=view.tables[kind],
                kv_positions=view.kv_positions[kind],
                window=self.cfg.window_of(index),
            )

        x, pools = self._run_layers(self._embed(tokens), layer_fn, pools)
        return self.final_norm(x), pools

    def _embed(self, tokens):
        dt = jnp.dtype(self.cfg.dtype)
        return constrain(jnp.take(self.embed[...], tokens, axis=0).astype(dt), ("batch", "length", "embed"))

    def _run_layers(self, x, layer_fn, states: dict | None = None):
        """Runs every layer: layer_fn(index, layer, x, state, block) -> (x, state).

        Layers go through the layer plan: a scan over blocks of `period` layers (index = position in the
        block, which fixes its attention type) and an unrolled tail; `scan_layers=False` runs the same plan
        unrolled. Per-layer state (the KV page pools) is laid out by the plan: {"blocks": one pytree per
        block position with a leading n_blocks axis, "tail": one pytree per tail layer}. A block layer gets
        its position's whole stacked state and `block`, the index into it, and returns the whole state
        updated: the state rides in the scan's carry and is written in place, never copied per step.
        """
        cfg = self.cfg
        graphdef, stacked = nnx.split(self.layers)
        plan = plan_layers(cfg)
        nb, period = plan.n_blocks, plan.period

        def run(index, params, x, state, block):
            def apply(params, x, state, block):
                return layer_fn(index, nnx.merge(graphdef, params), x, state, block)

            if cfg.remat != "none":
                apply = jax.checkpoint(apply, policy=_REMAT_POLICIES[cfg.remat])
            return apply(params, x, state, block)

        def at(tree, i):
            return jax.tree.map(lambda a: a[i], tree)

        blocks = jax.tree.map(lambda a: a[: nb * period].reshape(nb, period, *a.shape[1:]), stacked)
        block_states = states["blocks"] if states is not None else (None,) * period
        tail_states = states["tail"] if states is not None else (None,) * len(plan.tail)

        def block(carry, xs):
            x, block_states = carry
            params, b = xs
            new = list(block_states)
            for k in range(period):
                x, new[k] = run(k, at(params, k), x, new[k], b)
            return (x, tuple(new)), None

        if cfg.scan_layers:
            (x, new_blocks), _ = jax.lax.scan(block, (x, block_states), (blocks, jnp.arange(nb)))
        else:
            carry = (x, block_states)
            for b in range(nb):
                carry, _ = block(carry, (at(blocks, b), b))
            x, new_blocks = carry
        new_tail = []
        for i, state in zip(plan.tail, tail_states, strict=True):
            x, s = run(i, at(stacked, i), x, state, None)
            new_tail.append(s)
        return x, {"blocks": new_blocks, "tail": tuple(new_tail)}
