"""Bad checkpoints give one CwmError that names the file, field or tensor at fault."""

import json
import os
import shutil

import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file, save_file

import cwm_jax
from cwm_common.errors import CwmError

WEIGHTS = "model.safetensors"


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("good"))
    cwm_jax.to_hf(cwm_jax.CwmModel(cwm_jax.from_preset("cwm-tiny"), nnx.Rngs(0)), path)
    return path


@pytest.fixture
def bad_dir(good_dir, tmp_path):
    path = tmp_path / "bad"
    shutil.copytree(good_dir, path)
    return path


def _edit_tensors(path, edit):
    tensors = load_file(path / WEIGHTS)
    edit(tensors)
    save_file(tensors, path / WEIGHTS, metadata={"format": "pt"})


def _edit_config(path, edit):
    config = json.loads((path / "config.json").read_text())
    edit(config)
    (path / "config.json").write_text(json.dumps(config))


def test_missing_tensor_is_named(bad_dir):
    _edit_tensors(bad_dir, lambda t: t.pop("model.layers.2.mlp.up_proj.weight"))
    with pytest.raises(CwmError, match=r"missing tensor\(s\) model\.layers\.2\.mlp\.up_proj\.weight"):
        cwm_jax.from_hf(str(bad_dir))


def test_unexpected_tensor_is_named(bad_dir):
    _edit_tensors(bad_dir, lambda t: t.update({"model.layers.0.self_attn.q_proj.bias": np.zeros(192, np.float32)}))
    with pytest.raises(CwmError, match=r"unexpected tensor\(s\) model\.layers\.0\.self_attn\.q_proj\.bias"):
        cwm_jax.from_hf(str(bad_dir))


def test_misshaped_tensor_is_named_with_both_shapes(bad_dir):
    _edit_tensors(bad_dir, lambda t: t.update({"model.norm.weight": np.ones(191, np.float32)}))
    with pytest.raises(CwmError, match=r"model\.norm\.weight has shape \(191,\), expected \(192,\)"):
        cwm_jax.from_hf(str(bad_dir))


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda c: c.pop("layer_types"), "layer_types"),
        (lambda c: c.update(layer_types=c["layer_types"][:-1]), "layer_types"),
        (lambda c: c.update(layer_types=["full_attention", "chunked_attention"] * 2), "layer_types"),
        (lambda c: c["rope_parameters"].update(rope_type="yarn"), "rope_parameters"),
        (lambda c: c.update(num_key_value_heads=4), "num_attention_heads"),
        (lambda c: c.update(model_type="gpt2"), "model_type"),
        (lambda c: c.update(tie_word_embeddings=True), "tie_word_embeddings"),
    ],
)
def test_bad_config_fields_are_named(bad_dir, edit, field):
    _edit_config(bad_dir, edit)
    with pytest.raises(CwmError, match=rf"config\.json: .*'{field}'"):
        cwm_jax.from_hf(str(bad_dir))


def test_missing_files_are_named(bad_dir, tmp_path):
    os.remove(bad_dir / WEIGHTS)
    with pytest.raises(CwmError, match="no model.safetensors"):
        cwm_jax.from_hf(str(bad_dir))
    with pytest.raises(CwmError, match="config.json: not found"):
        cwm_jax.from_hf(str(tmp_path / "nowhere"))
