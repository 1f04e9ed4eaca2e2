"""from_hf gives the logits of transformers' CwmForCausalLM (fp32, max |diff| <= 1e-4)."""

import jax.numpy as jnp
import numpy as np
import pytest
from hf_fixtures import hf_logits, tiny_hf_config, tiny_hf_model

import cwm_jax

F, S = "full_attention", "sliding_attention"
CASES = {
    # HF default pattern (global every 4th), GQA 3, llama3 RoPE, tokens well past the window of 8.
    "default-pattern-gqa3": dict(),
    # Multi-head (GQA ratio 1), a last global layer as in native CWM, plain RoPE.
    "mha-last-global": dict(
        num_key_value_heads=6,
        layer_types=[F, S, S, S, F],
        num_hidden_layers=5,
        rope_parameters=dict(rope_type="default", rope_theta=500000.0),
    ),
    # Irregular pattern, MQA, wider heads.
    "mqa-irregular": dict(
        num_key_value_heads=1,
        num_attention_heads=4,
        head_dim=24,
        num_hidden_layers=4,
        layer_types=[S, F, S, S],
        sliding_window=5,
    ),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request, tmp_path_factory):
    hf_model = tiny_hf_model(tiny_hf_config(**CASES[request.param]))
    path = str(tmp_path_factory.mktemp(request.param))
    hf_model.save_pretrained(path)
    return hf_model, path


def test_logits_match_transformers(case):
    hf_model, path = case
    tokens = np.random.default_rng(0).integers(0, 320, (2, 40))
    expected = hf_logits(hf_model, tokens)
    assert np.abs(expected).max() > 5  # the check means something only if logits are far from zero
    # The kernels run in interpret mode here (Pallas's TPU interpreter for splash).
    for impl in ("reference", "blockwise", "splash", "pallas_gpu"):
        model = cwm_jax.from_hf(path, attention_impl=impl, attention_block_size=16)
        got = np.asarray(model(jnp.asarray(tokens, jnp.int32)))
        assert got.shape == (2, 40, 320)
        assert np.abs(got - expected).max() <= 1e-4, impl


def test_layer_types_come_from_the_checkpoint(case):
    hf_model, path = case
    assert cwm_jax.from_hf(path).cfg.layer_types == tuple(hf_model.config.layer_types)
