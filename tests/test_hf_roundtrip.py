"""to_hf writes what transformers loads, bit for bit what from_hf read."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from hf_fixtures import hf_logits, tiny_hf_config, tiny_hf_model
from safetensors.numpy import load_file
from transformers import CwmForCausalLM

import cwm_jax
from cwm_cli.main import main
from cwm_common.experiment_config import load_config
from cwm_jax.hf.safetensors_dir import INDEX, SafetensorsReader
from cwm_jax.inference_io import load_model
from cwm_jax.train.loop import train

TOKENS = np.random.default_rng(3).integers(0, 320, (2, 24))


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    model = tiny_hf_model(tiny_hf_config())
    path = str(tmp_path_factory.mktemp("hf"))
    model.save_pretrained(path)
    return model, path


def _tensors(path):
    reader = SafetensorsReader(path)
    return {name: reader.get(name) for name in reader.names()}


def test_round_trip_is_bit_exact_and_loads_in_transformers(hf_dir, tmp_path):
    hf_model, path = hf_dir
    cwm_jax.to_hf(cwm_jax.from_hf(path), str(tmp_path))
    original, exported = load_file(os.path.join(path, "model.safetensors")), _tensors(str(tmp_path))
    assert sorted(original) == sorted(exported)
    for name, tensor in original.items():
        assert exported[name].dtype == tensor.dtype and np.array_equal(exported[name], tensor), name
    reloaded = CwmForCausalLM.from_pretrained(str(tmp_path)).eval()
    assert reloaded.config.layer_types == hf_model.config.layer_types
    assert reloaded.config.rope_parameters == hf_model.config.rope_parameters
    np.testing.assert_array_equal(hf_logits(reloaded, TOKENS), hf_logits(hf_model, TOKENS))


def test_sharded_export_reads_back_in_both(hf_dir, tmp_path):
    hf_model, path = hf_dir
    model = cwm_jax.from_hf(path)
    cwm_jax.to_hf(model, str(tmp_path), max_shard_bytes=200_000)
    with open(tmp_path / INDEX) as f:
        shards = set(json.load(f)["weight_map"].values())
    assert len(shards) > 2 and all((tmp_path / s).exists() for s in shards)
    np.testing.assert_array_equal(
        cwm_jax.from_hf(str(tmp_path))(jnp.asarray(TOKENS, jnp.int32)), model(jnp.asarray(TOKENS, jnp.int32))
    )
    reloaded = CwmForCausalLM.from_pretrained(str(tmp_path)).eval()
    np.testing.assert_array_equal(hf_logits(reloaded, TOKENS), hf_logits(hf_model, TOKENS))


def test_native_model_exports_to_transformers_with_the_same_logits(tmp_path):
    cfg = cwm_jax.from_preset(
        "cwm-tiny",
        init_std=0.1,
        n_layers=5,
        layer_types=("full_attention", "sliding_attention", "sliding_attention", "full_attention", "sliding_attention"),
        sliding_window=8,
    )
    model = cwm_jax.CwmModel(cfg, nnx.Rngs(4))
    cwm_jax.to_hf(model, str(tmp_path))
    reloaded = CwmForCausalLM.from_pretrained(str(tmp_path)).eval()
    tokens = np.random.default_rng(4).integers(0, cfg.vocab_size, (2, 30))
    expected = np.asarray(model(jnp.asarray(tokens, jnp.int32)))
    assert np.abs(expected).max() > 1
    assert np.abs(hf_logits(reloaded, tokens) - expected).max() <= 1e-4


def test_bfloat16_export_and_load(hf_dir, tmp_path):
    hf_model, path = hf_dir
    cwm_jax.to_hf(cwm_jax.from_hf(path), str(tmp_path), dtype="bfloat16")
    reloaded = CwmForCausalLM.from_pretrained(str(tmp_path))
    assert reloaded.dtype == torch.bfloat16
    model = cwm_jax.from_hf(str(tmp_path), dtype="bfloat16")
    assert model.embed[...].dtype == jnp.bfloat16
    logits = np.asarray(model(jnp.asarray(TOKENS, jnp.int32)))
    expected = hf_logits(hf_model, TOKENS)
    # bf16 keeps ~3 significant digits: a loose bound, but far below the logit scale.
    assert np.abs(logits - expected).max() < 0.1 * np.abs(expected).max()


@pytest.mark.slow
def test_a_training_runs_checkpoint_exports_to_transformers(tmp_path, capsys):
    """Train (a few SFT-sized steps on 8 devices), then `cwm convert cwm-to-hf WORKDIR`: transformers loads
    it and gives the trained params' logits."""
    workdir = str(tmp_path / "run")
    train(
        load_config(
            "configs/tiny.py",
            [
                "--config.data.kind=synthetic",
                "--config.model.n_kv_heads=2",
                "--config.steps=3",
                "--config.mesh.fsdp=2",
                "--config.log_every=100",
            ],
        ),
        workdir,
        log=lambda m: None,
    )
    assert main(["convert", "cwm-to-hf", workdir, str(tmp_path / "hf")]) == 0
    trained = load_model(workdir)
    reloaded = CwmForCausalLM.from_pretrained(str(tmp_path / "hf")).eval()
    tokens = np.random.default_rng(5).integers(0, trained.cfg.vocab_size, (2, 20))
    expected = np.asarray(trained(jnp.asarray(tokens, jnp.int32)))
    assert np.abs(hf_logits(reloaded, tokens) - expected).max() <= 1e-4
    assert "wrote" in capsys.readouterr().out
