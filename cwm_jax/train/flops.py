"""Compute per token as the CWM paper counts it (M = 6 N_non-embedding + 6 d L S), window-aware, and MFU."""

import jax

from cwm_jax.config import ModelConfig

# Dense bf16 peak FLOP/s per device (vendor figures).
PEAK_FLOPS = {
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,
    "TPU v5e": 197e12,
    "TPU v5p": 459e12,
    "TPU v5": 459e12,
    "TPU v6 lite": 918e12,
    "TPU v6e": 918e12,
    "NVIDIA H100": 989e12,
    "NVIDIA H200": 989e12,
    "NVIDIA A100": 312e12,
    "NVIDIA B200": 2250e12,
}


def flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Training FLOPs per token: 6 x non-embedding params, plus attention 6 x (heads x head_dim) x S per layer
    with S the keys a token attends (the window for local layers), as in CWM's scaling-law compute."""
    attn_width = cfg.n_heads * cfg.head_dim
    keys = sum(min(seq_len, cfg.window_of(i) or seq_len) for i in range(cfg.n_layers))
    return 6.0 * cfg.non_embedding_params() + 6.0 * attn_width * keys


def peak_flops_per_device(override: float = 0.0) -> float | None:
    """The device's peak from the table (matched on jax's device_kind), an explicit override, or None."""
    if override > 0:
        return override
    kind = jax.devices()[0].device_kind
    matches = [v for name, v in PEAK_FLOPS.items() if kind.startswith(name)]
    return max(matches) if matches else None
