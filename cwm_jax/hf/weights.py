"""The one table between our parameter tree and Hugging Face `CwmForCausalLM` tensor names.

torch Linear weights are [out, in]; ours are [in, out] with heads split out ([d, heads, head_dim] for
q/k/v, [heads, head_dim, d] for o). Both use the half-split RoPE layout, so no row permutation is needed.
"""

import dataclasses
from collections.abc import Callable

import numpy as np

from cwm_jax.config import ModelConfig

Path = tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Entry:
    path: Path  # where the tensor lives in our parameter tree
    hf_name: str  # "{i}" stands for the layer index in per-layer entries
    hf_shape: Callable[[ModelConfig], tuple[int, ...]]
    to_ours: Callable[[np.ndarray, ModelConfig], np.ndarray]
    to_hf: Callable[[np.ndarray, ModelConfig], np.ndarray]

    @property
    def per_layer(self) -> bool:
        return "{i}" in self.hf_name


def _same(w, cfg):
    return w


def _t(w, cfg):
    return np.ascontiguousarray(w.T)


def _heads_in(n_heads: Callable[[ModelConfig], int]):
    """[heads*hd, d] <-> [d, heads, hd]."""

    def to_ours(w, cfg):
        return np.ascontiguousarray(w.T).reshape(cfg.d_model, n_heads(cfg), cfg.head_dim)

    def to_hf(p, cfg):
        return np.ascontiguousarray(p.reshape(cfg.d_model, -1).T)

    return to_ours, to_hf


def _heads_out(w, cfg):
    """o_proj [d, heads*hd] -> [heads, hd, d]."""
    return np.ascontiguousarray(w.T).reshape(cfg.n_heads, cfg.head_dim, cfg.d_model)


def _heads_out_hf(p, cfg):
    return np.ascontiguousarray(p.reshape(-1, cfg.d_model).T)


_q = _heads_in(lambda c: c.n_heads)
_kv = _heads_in(lambda c: c.n_kv_heads)
_L = "model.layers.{i}."

ENTRIES = (
    Entry(("embed",), "model.embed_tokens.weight", lambda c: (c.vocab_size, c.d_model), _same, _same),
    Entry(("final_norm", "scale"), "model.norm.weight", lambda c: (c.d_model,), _same, _same),
    Entry(("lm_head",), "lm_head.weight", lambda c: (c.vocab_size, c.d_model), _t, _t),
    Entry(("layers", "attn_norm", "scale"), _L + "input_layernorm.weight", lambda c: (c.d_model,), _same, _same),
    Entry(("layers", "attn", "q"), _L + "self_attn.q_proj.weight", lambda c: (c.n_heads * c.head_dim, c.d_model), *_q),
    Entry(
        ("layers", "attn", "k"), _L + "self_attn.k_proj.weight", lambda c: (c.n_kv_heads * c.head_dim, c.d_model), *_kv
    ),
    Entry(
        ("layers", "attn", "v"), _L + "self_attn.v_proj.weight", lambda c: (c.n_kv_heads * c.head_dim, c.d_model), *_kv
    ),
    Entry(
        ("layers", "attn", "o"),
        _L + "self_attn.o_proj.weight",
        lambda c: (c.d_model, c.n_heads * c.head_dim),
        _heads_out,
        _heads_out_hf,
    ),
    Entry(
        ("layers", "mlp_norm", "scale"), _L + "post_attention_layernorm.weight", lambda c: (c.d_model,), _same, _same
    ),
    Entry(("layers", "mlp", "gate"), _L + "mlp.gate_proj.weight", lambda c: (c.ffn_dim, c.d_model), _t, _t),
    Entry(("layers", "mlp", "up"), _L + "mlp.up_proj.weight", lambda c: (c.ffn_dim, c.d_model), _t, _t),
    Entry(("layers", "mlp", "down"), _L + "mlp.down_proj.weight", lambda c: (c.d_model, c.ffn_dim), _t, _t),
)


def hf_names(entry: Entry, cfg: ModelConfig) -> list[str]:
    if entry.per_layer:
        return [entry.hf_name.format(i=i) for i in range(cfg.n_layers)]
    return [entry.hf_name]


def expected_hf_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    return {name: e.hf_shape(cfg) for e in ENTRIES for name in hf_names(e, cfg)}
