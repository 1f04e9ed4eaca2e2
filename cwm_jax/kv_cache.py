"""The KV cache, laid out per attention type: global layers keep every position, local (sliding-window)
layers a ring buffer of W + chunk - 1 slots (enough for any query of a `chunk`-token step to see its W
keys), so cache memory for CWM follows the window, not 64 full layers.

Layout (follows the layer plan, like the model's layer loop): {"layers": {"blocks": per block position a
(K, V) pair [n_blocks, B, slots, kv_heads, head_dim], "tail": per tail layer a (K, V) pair}, "positions":
{layer type: [B, slots] position held by each slot, INVALID when empty}}. A token at position p lives in
slot p % slots.
"""

import jax
import jax.numpy as jnp

from cwm_jax.config import FULL, SLIDING, ModelConfig
from cwm_jax.layer_plan import plan_layers

INVALID = jnp.iinfo(jnp.int32).max


def slots_per_type(cfg: ModelConfig, max_len: int, chunk: int, ring: bool = True) -> dict[str, int]:
    local = min(max_len, cfg.sliding_window + chunk - 1) if ring else max_len
    return {FULL: max_len, SLIDING: local}


def init_cache(cfg: ModelConfig, batch: int, max_len: int, chunk: int = 1, ring: bool = True) -> dict:
    slots = slots_per_type(cfg, max_len, chunk, ring)
    plan = plan_layers(cfg)
    dtype = jnp.dtype(cfg.dtype)

    def kv(kind: str, *lead: int):
        shape = (*lead, batch, slots[kind], cfg.n_kv_heads, cfg.head_dim)
        return jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)

    return {
        "layers": {
            "blocks": tuple(kv(cfg.layer_types[k], plan.n_blocks) for k in range(plan.period)),
            "tail": tuple(kv(cfg.layer_types[i]) for i in plan.tail),
        },
        "positions": {
            kind: jnp.full((batch, n), INVALID, jnp.int32) for kind, n in slots.items() if kind in cfg.layer_types
        },
    }


def slots_of(positions: jax.Array, valid: jax.Array, size: int) -> jax.Array:
    """Slot of each token; padding (invalid) tokens get an out-of-range slot, so their writes are dropped
    and cannot overwrite a key that later queries need."""
    return jnp.where(valid, positions % size, size)


def write_positions(cfg: ModelConfig, cache: dict, positions: jax.Array, valid: jax.Array) -> dict:
    """Records which position each slot holds after this step; also returns the step's slots per type."""
    rows = jnp.arange(positions.shape[0])[:, None]
    updated, slots = {}, {}
    for kind, held in cache["positions"].items():
        slots[kind] = slots_of(positions, valid, held.shape[1])
        updated[kind] = held.at[rows, slots[kind]].set(positions, mode="drop")
    return {**cache, "positions": updated, "slots": slots}


def write_kv(cache_k: jax.Array, cache_v: jax.Array, k: jax.Array, v: jax.Array, slots: jax.Array):
    """Puts this step's keys and values [B, C, kv_heads, head_dim] into their slots (dropping padding)."""
    rows = jnp.arange(slots.shape[0])[:, None]
    return (
        cache_k.at[rows, slots].set(k.astype(cache_k.dtype), mode="drop"),
        cache_v.at[rows, slots].set(v.astype(cache_v.dtype), mode="drop"),
    )


def cache_bytes_per_token(cfg: ModelConfig, context: int, ring: bool = True, bytes_per_value: int = 2) -> float:
    """KV bytes per token of context, averaged over a full `context`-token cache."""
    slots = slots_per_type(cfg, context, 1, ring)
    per_slot = 2 * cfg.n_kv_heads * cfg.head_dim * bytes_per_value
    return sum(slots[kind] * per_slot for kind in cfg.layer_types) / context
