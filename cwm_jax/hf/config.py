"""ModelConfig <-> Hugging Face `CwmConfig` (config.json)."""

import re
from collections.abc import Callable
from typing import Any, NoReturn

from cwm_common.errors import CwmError
from cwm_jax.config import LAYER_TYPES, SLIDING, ModelConfig, from_mapping

# Our field -> the config.json field it comes from, to name the user's field in errors.
_HF_FIELD = dict(
    vocab_size="vocab_size",
    d_model="hidden_size",
    n_layers="num_hidden_layers",
    n_heads="num_attention_heads",
    n_kv_heads="num_key_value_heads",
    head_dim="head_dim",
    ffn_dim="intermediate_size",
    sliding_window="sliding_window",
    max_seq_len="max_position_embeddings",
    rms_norm_eps="rms_norm_eps",
    init_std="initializer_range",
    layer_types="layer_types",
)

# The hub's CWM config first declared a llama model type so vLLM could load it; both describe CWM.
ACCEPTED_MODEL_TYPES = ("cwm", "llama")


def model_config_from_hf(hf: dict[str, Any], source: str, **overrides: Any) -> ModelConfig:
    """Reads an HF config dict; `source` names the file in errors. Overrides set execution fields."""

    def fail(field: str, rule: str) -> NoReturn:
        raise CwmError(f"{source}: field '{field}' {rule}")

    def need(field: str):
        if field not in hf or hf[field] is None:
            fail(field, "is missing")
        return hf[field]

    if hf.get("model_type") not in ACCEPTED_MODEL_TYPES:
        fail("model_type", f"is {hf.get('model_type')!r}; expected one of {', '.join(ACCEPTED_MODEL_TYPES)}")
    if hf.get("hidden_act", "silu") != "silu":
        fail("hidden_act", f"is {hf['hidden_act']!r}; CWM uses 'silu'")
    for flag in ("attention_bias", "mlp_bias", "tie_word_embeddings"):
        if hf.get(flag):
            fail(flag, "is true; CWM has no biases and an untied output head")
    layer_types = need("layer_types")  # never assumed: CWM checkpoints differ on the last layer
    unknown = sorted({t for t in layer_types if t not in LAYER_TYPES})
    if unknown:
        fail("layer_types", f"has unknown value(s) {unknown}; allowed: {', '.join(LAYER_TYPES)}")
    n_heads = need("num_attention_heads")
    max_len = need("max_position_embeddings")
    window = hf.get("sliding_window")
    if window is None:
        if SLIDING in layer_types:
            fail("sliding_window", "is missing but layer_types has sliding layers")
        window = max_len
    eos = hf.get("eos_token_id")
    values = dict(
        vocab_size=need("vocab_size"),
        d_model=need("hidden_size"),
        n_layers=need("num_hidden_layers"),
        n_heads=n_heads,
        n_kv_heads=hf.get("num_key_value_heads") or n_heads,
        head_dim=hf.get("head_dim") or need("hidden_size") // n_heads,
        ffn_dim=need("intermediate_size"),
        layer_types=tuple(layer_types),
        sliding_window=window,
        max_seq_len=max_len,
        rms_norm_eps=hf.get("rms_norm_eps", 1e-5),
        init_std=hf.get("initializer_range", 0.02),
        bos_token_id=hf.get("bos_token_id"),
        pad_token_id=hf.get("pad_token_id"),
        eos_token_ids=() if eos is None else tuple(eos) if isinstance(eos, list) else (eos,),
        **_rope_fields(hf, fail),
    )
    try:
        return from_mapping({**values, **overrides})
    except CwmError as e:
        field = re.search(r"field '(\w+)'", str(e))
        hint = f" (config.json field '{_HF_FIELD[field[1]]}')" if field and field[1] in _HF_FIELD else ""
        raise CwmError(f"{source}: {e}{hint}") from None


def _rope_fields(hf: dict[str, Any], fail: Callable[[str, str], NoReturn]) -> dict[str, Any]:
    # transformers >= 5 writes `rope_parameters`; older files carry `rope_theta` plus `rope_scaling`.
    rope = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
    theta = rope.get("rope_theta", hf.get("rope_theta"))
    if theta is None:
        fail("rope_parameters", "has no rope_theta")
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind == "default":
        return dict(rope_type="default", rope_theta=float(theta))
    if kind != "llama3":
        fail("rope_parameters", f"has rope_type {kind!r}; supported: default, llama3")
    missing = [
        k
        for k in ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
        if k not in rope
    ]
    if missing:
        fail("rope_parameters", f"lacks {', '.join(missing)} for llama3 scaling")
    return dict(
        rope_type="llama3",
        rope_theta=float(theta),
        rope_factor=float(rope["factor"]),
        rope_low_freq_factor=float(rope["low_freq_factor"]),
        rope_high_freq_factor=float(rope["high_freq_factor"]),
        rope_original_max_len=int(rope["original_max_position_embeddings"]),
    )


def hf_config_from_model(cfg: ModelConfig, dtype: str) -> dict[str, Any]:
    """A config.json dict that `transformers.CwmConfig` reads back to the same architecture."""
    rope = {"rope_type": cfg.rope_type, "rope_theta": cfg.rope_theta}
    if cfg.rope_type == "llama3":
        rope.update(
            factor=cfg.rope_factor,
            low_freq_factor=cfg.rope_low_freq_factor,
            high_freq_factor=cfg.rope_high_freq_factor,
            original_max_position_embeddings=cfg.rope_original_max_len,
        )
    return {
        "architectures": ["CwmForCausalLM"],
        "model_type": "cwm",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.ffn_dim,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.max_seq_len,
        "initializer_range": cfg.init_std,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_parameters": rope,
        "sliding_window": cfg.sliding_window,
        "layer_types": list(cfg.layer_types),
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": list(cfg.eos_token_ids),
        "pad_token_id": cfg.pad_token_id,
        "tie_word_embeddings": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "dtype": dtype,
    }
