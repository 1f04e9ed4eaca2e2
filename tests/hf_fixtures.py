"""Tiny random `transformers` CWM checkpoints, the parity reference (torch CPU, test time only)."""

import numpy as np
import torch
from transformers import CwmConfig, CwmForCausalLM

LLAMA3_ROPE = dict(
    rope_type="llama3",
    rope_theta=10000.0,
    factor=8.0,
    low_freq_factor=1.0,
    high_freq_factor=4.0,
    original_max_position_embeddings=16,
)


def tiny_hf_config(**changes) -> CwmConfig:
    fields = dict(
        vocab_size=320,
        hidden_size=96,
        intermediate_size=160,
        num_hidden_layers=5,
        num_attention_heads=6,
        num_key_value_heads=2,
        head_dim=16,
        sliding_window=8,
        max_position_embeddings=128,
        rope_parameters=LLAMA3_ROPE,
        bos_token_id=1,
        eos_token_id=[2],
        pad_token_id=0,
    )
    return CwmConfig(**{**fields, **changes})


def tiny_hf_model(config: CwmConfig, seed: int = 0) -> CwmForCausalLM:
    """Random weights scaled well above the 0.02 init so logits are far from zero (a strong check)."""
    torch.manual_seed(seed)
    model = CwmForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            elif name == "lm_head.weight":
                p.normal_(0.0, 4.0 / np.sqrt(p.shape[-1]))
            else:  # unit-variance activations: sharp attention, yet fp32 rounding stays small
                p.normal_(0.0, 1.0 / np.sqrt(p.shape[-1]) if p.ndim == 2 and "embed" not in name else 1.0)
    return model


def hf_logits(model: CwmForCausalLM, tokens: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.as_tensor(tokens, dtype=torch.long)).logits.float().numpy()


def windowed_pair(directory: str):
    """A tiny HF model with window 8 and a last global layer, saved to `directory`, and its conversion."""
    import cwm_jax

    full, sliding = "full_attention", "sliding_attention"
    hf = tiny_hf_model(tiny_hf_config(sliding_window=8, num_hidden_layers=5, layer_types=[full, *[sliding] * 3, full]))
    hf.save_pretrained(directory)
    return hf, cwm_jax.from_hf(directory)
