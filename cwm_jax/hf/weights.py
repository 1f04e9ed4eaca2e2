"""The one table between our parameter tree and Hugging Face `CwmForCausalLM` tensor names.

torch Linear weights are [out, in]; ours are [in, out] with heads split out ([d, heads, head_dim] for
q/k/v, [heads, head_dim, d] for o). Both use the half-split RoPE layout, so no row permutation is needed.

Loading reads a part at a time: each layout maps a box of OUR array (one slice per dimension, as a
device's shard is given) to the box of the HF tensor that holds it, and turns what was read there into
that part of ours. The whole tensor is the box of every element, so unsharded loading is the same code.
"""

import dataclasses
from collections.abc import Callable

import numpy as np

from cwm_jax.config import ModelConfig

Path = tuple[str, ...]
Box = tuple[slice, ...]  # concrete bounds (start and stop set, step 1), one slice per dimension


@dataclasses.dataclass(frozen=True)
class Layout:
    hf_box: Callable[[Box, ModelConfig], Box]  # the HF box holding the part of ours at a box
    to_ours: Callable[[np.ndarray, Box, ModelConfig], np.ndarray]  # the HF box's values -> ours at the box
    to_hf: Callable[[np.ndarray, ModelConfig], np.ndarray]  # a whole tensor of ours -> the HF tensor


@dataclasses.dataclass(frozen=True)
class Entry:
    path: Path  # where the tensor lives in our parameter tree
    hf_name: str  # "{i}" stands for the layer index in per-layer entries
    hf_shape: Callable[[ModelConfig], tuple[int, ...]]
    layout: Layout

    @property
    def per_layer(self) -> bool:
        return "{i}" in self.hf_name


SAME = Layout(
    hf_box=lambda box, cfg: box,
    to_ours=lambda w, box, cfg: w,
    to_hf=lambda p, cfg: p,
)

TRANSPOSED = Layout(
    hf_box=lambda box, cfg: box[::-1],
    to_ours=lambda w, box, cfg: w.T,
    to_hf=lambda p, cfg: np.ascontiguousarray(p.T),
)


def _head_rows(heads: slice, cfg: ModelConfig) -> slice:
    """The rows of a [heads*hd, ...] HF weight that hold these heads (every head_dim row of each)."""
    return slice(heads.start * cfg.head_dim, heads.stop * cfg.head_dim)


def _split_heads(w: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    """[heads*hd, n] -> [heads, hd, n]."""
    return w.reshape(-1, cfg.head_dim, w.shape[-1])


# q/k/v: [heads*hd, d] (HF) <-> [d, heads, hd] (ours), whatever the number of heads.
HEADS_IN = Layout(
    hf_box=lambda box, cfg: (_head_rows(box[1], cfg), box[0]),
    to_ours=lambda w, box, cfg: _split_heads(w, cfg)[:, box[2]].transpose(2, 0, 1),
    to_hf=lambda p, cfg: np.ascontiguousarray(p.reshape(cfg.d_model, -1).T),
)

# o: [d, heads*hd] (HF) <-> [heads, hd, d] (ours).
HEADS_OUT = Layout(
    hf_box=lambda box, cfg: (box[2], _head_rows(box[0], cfg)),
    to_ours=lambda w, box, cfg: _split_heads(w.T, cfg)[:, box[1]],
    to_hf=lambda p, cfg: np.ascontiguousarray(p.reshape(-1, cfg.d_model).T),
)

_L = "model.layers.{i}."

ENTRIES = (
    Entry(("embed",), "model.embed_tokens.weight", lambda c: (c.vocab_size, c.d_model), SAME),
    Entry(("final_norm", "scale"), "model.norm.weight", lambda c: (c.d_model,), SAME),
    Entry(("lm_head",), "lm_head.weight", lambda c: (c.vocab_size, c.d_model), TRANSPOSED),
    Entry(("layers", "attn_norm", "scale"), _L + "input_layernorm.weight", lambda c: (c.d_model,), SAME),
    Entry(
        ("layers", "attn", "q"), _L + "self_attn.q_proj.weight", lambda c: (c.n_heads * c.head_dim, c.d_model), HEADS_IN
    ),
    Entry(
        ("layers", "attn", "k"),
        _L + "self_attn.k_proj.weight",
        lambda c: (c.n_kv_heads * c.head_dim, c.d_model),
        HEADS_IN,
    ),
    Entry(
        ("layers", "attn", "v"),
        _L + "self_attn.v_proj.weight",
        lambda c: (c.n_kv_heads * c.head_dim, c.d_model),
        HEADS_IN,
    ),
    Entry(
        ("layers", "attn", "o"),
        _L + "self_attn.o_proj.weight",
        lambda c: (c.d_model, c.n_heads * c.head_dim),
        HEADS_OUT,
    ),
    Entry(("layers", "mlp_norm", "scale"), _L + "post_attention_layernorm.weight", lambda c: (c.d_model,), SAME),
    Entry(("layers", "mlp", "gate"), _L + "mlp.gate_proj.weight", lambda c: (c.ffn_dim, c.d_model), TRANSPOSED),
    Entry(("layers", "mlp", "up"), _L + "mlp.up_proj.weight", lambda c: (c.ffn_dim, c.d_model), TRANSPOSED),
    Entry(("layers", "mlp", "down"), _L + "mlp.down_proj.weight", lambda c: (c.d_model, c.ffn_dim), TRANSPOSED),
)


def hf_names(entry: Entry, cfg: ModelConfig) -> list[str]:
    if entry.per_layer:
        return [entry.hf_name.format(i=i) for i in range(cfg.n_layers)]
    return [entry.hf_name]


def expected_hf_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    return {name: e.hf_shape(cfg) for e in ENTRIES for name in hf_names(e, cfg)}
