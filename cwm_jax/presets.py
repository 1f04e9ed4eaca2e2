"""Model presets: CWM-32B as released, and CWM-shaped proxies for scaling-law sweeps.

Proxies keep CWM's ratios: 6 query heads per KV head, FFN = 3.5 x d_model, d_model / n_layers near 96,
the 3:1 local:global interleave (layer i global iff i % 4 == 0), window 8192, llama3-scaled RoPE and the
128,256-token vocabulary. Their names give the non-embedding parameter count (what scaling laws count);
`cwm-tiny` is a CPU-sized model with a small vocabulary for demos and tests.
"""

from typing import Any

from cwm_common.errors import CwmError
from cwm_jax.config import ModelConfig, from_mapping, interleaved_layer_types

# name: (d_model, n_layers, n_heads, n_kv_heads, head_dim, ffn_dim)
_SHAPES = {
    "cwm-10m": (384, 4, 6, 1, 64, 1344),  # 7.6M non-embedding
    "cwm-50m": (768, 8, 12, 2, 64, 2688),  # 60.6M
    "cwm-150m": (1152, 8, 18, 3, 64, 4032),  # 136M
    "cwm-400m": (1536, 12, 12, 2, 128, 5376),  # 363M
    "cwm-1b": (2304, 16, 18, 3, 128, 8064),  # 1.09B
    "cwm-3b": (3072, 24, 24, 4, 128, 10752),  # 2.91B
    "cwm-7b": (3840, 36, 30, 5, 128, 13440),  # 6.81B
    "cwm-32b": (6144, 64, 48, 8, 128, 21504),  # 31.0B non-embedding; 32,581,097,472 in all
}

NAMES = ("cwm-tiny", *_SHAPES)


def preset_fields(name: str) -> dict[str, Any]:
    """Every field of the preset's ModelConfig (execution fields at their defaults)."""
    return ModelConfig(**_architecture(name)).to_dict()


def from_preset(name: str, **overrides: Any) -> ModelConfig:
    """A preset with fields overridden."""
    return from_mapping({**preset_fields(name), **overrides})


def _architecture(name: str) -> dict:
    if name == "cwm-tiny":
        return dict(
            vocab_size=1024,
            d_model=192,
            n_layers=4,
            n_heads=6,
            n_kv_heads=1,
            head_dim=32,
            ffn_dim=672,
            layer_types=interleaved_layer_types(4),
            sliding_window=32,
            max_seq_len=512,
            rope_original_max_len=128,
            bos_token_id=1,
            eos_token_ids=(2,),
            pad_token_id=0,
        )
    if name not in _SHAPES:
        raise CwmError(f"unknown model preset '{name}'; known: {', '.join(NAMES)}")
    d, n_layers, n_heads, n_kv_heads, head_dim, ffn = _SHAPES[name]
    return dict(
        vocab_size=128256,
        d_model=d,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        head_dim=head_dim,
        ffn_dim=ffn,
        layer_types=interleaved_layer_types(n_layers),
        sliding_window=8192,
        max_seq_len=131072,
    )
