import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx

from cwm_common.errors import CwmError
from cwm_jax.config import FULL, SLIDING, ModelConfig, from_mapping
from cwm_jax.model import CwmModel
from cwm_jax.presets import NAMES, from_preset, preset_fields


def _abstract_param_count(cfg: ModelConfig) -> int:
    abstract = nnx.eval_shape(lambda: CwmModel(cfg, nnx.Rngs(0)))
    return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(nnx.state(abstract, nnx.Param)))


def test_cwm_32b_is_the_released_shape():
    cfg = from_preset("cwm-32b")
    assert (cfg.n_layers, cfg.d_model, cfg.ffn_dim, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.vocab_size) == (
        64,
        6144,
        21504,
        48,
        8,
        128,
        128256,
    )
    assert (
        cfg.rope_type,
        cfg.rope_theta,
        cfg.rope_factor,
        cfg.rope_low_freq_factor,
        cfg.rope_high_freq_factor,
        cfg.rope_original_max_len,
    ) == ("llama3", 1e6, 16.0, 1.0, 4.0, 8192)
    assert cfg.sliding_window == 8192 and cfg.max_seq_len == 131072 and cfg.rms_norm_eps == 1e-5
    assert [i for i, t in enumerate(cfg.layer_types) if t == FULL] == list(range(0, 64, 4))
    assert cfg.param_count() == 32_581_097_472


def test_param_count_matches_the_built_model_without_memory():
    # eval_shape builds the 32B model abstractly: the formula must agree with the real parameter tree.
    for name in ("cwm-tiny", "cwm-10m", "cwm-32b"):
        cfg = from_preset(name)
        assert _abstract_param_count(cfg) == cfg.param_count(), name


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("cwm-tiny", "cwm-32b")])
def test_proxies_keep_cwm_ratios_and_their_size(name):
    cfg = from_preset(name)
    assert cfg.n_heads == 6 * cfg.n_kv_heads
    assert cfg.ffn_dim * 2 == cfg.d_model * 7
    assert cfg.layer_types == tuple(FULL if i % 4 == 0 else SLIDING for i in range(cfg.n_layers))
    assert 48 <= cfg.d_model / cfg.n_layers <= 160
    nominal = float(name.split("-")[1][:-1]) * {"m": 1e6, "b": 1e9}[name[-1]]
    assert 0.7 < cfg.non_embedding_params() / nominal < 1.3


def test_proxy_sizes_increase():
    sizes = [from_preset(n).non_embedding_params() for n in NAMES]
    assert sizes == sorted(sizes)


def _tiny(**changes):
    return from_mapping({**preset_fields("cwm-tiny"), **changes})


@pytest.mark.parametrize(
    "changes, field",
    [
        (dict(n_kv_heads=4), "n_heads"),
        (dict(layer_types=(FULL, SLIDING)), "layer_types"),
        (dict(layer_types=(FULL, SLIDING, "local", SLIDING)), "layer_types"),
        (dict(rope_type="yarn"), "rope_type"),
        (dict(sliding_window=1024), "sliding_window"),
        (dict(attention_impl="flash9"), "attention_impl"),
        (dict(head_dim=33), "head_dim"),
        (dict(d_model=0), "d_model"),
        (dict(dtype="int8"), "dtype"),
        (dict(remat="sometimes"), "remat"),
        (dict(rope_low_freq_factor=5.0), "rope_high_freq_factor"),
        (dict(rms_norm_eps=0.0), "rms_norm_eps"),
    ],
)
def test_invalid_fields_are_named(changes, field):
    with pytest.raises(CwmError, match=f"'{field}'"):
        _tiny(**changes)


def test_unknown_and_missing_fields_are_named():
    with pytest.raises(CwmError, match="n_layer_count"):
        _tiny(n_layer_count=3)
    fields = dict(preset_fields("cwm-tiny"))
    del fields["ffn_dim"]
    with pytest.raises(CwmError, match="ffn_dim"):
        from_mapping(fields)
    with pytest.raises(CwmError, match="cwm-99b"):
        from_preset("cwm-99b")


def test_config_is_frozen_and_replace_validates():
    cfg = from_preset("cwm-tiny")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.__setattr__("n_layers", 3)  # `cfg.n_layers = 3`, spelled so the type checker lets it be tried
    with pytest.raises(CwmError, match="'layer_types'"):
        cfg.replace(n_layers=5)
    assert cfg.replace(attention_impl="blockwise").attention_impl == "blockwise"
