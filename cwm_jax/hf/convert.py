"""from_hf / to_hf: a `CwmForCausalLM` safetensors directory <-> a ready CwmModel."""

import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cwm_common.errors import CwmError
from cwm_jax.config import DTYPES, ModelConfig
from cwm_jax.hf.config import hf_config_from_model, model_config_from_hf
from cwm_jax.hf.safetensors_dir import SafetensorsReader, write_safetensors_dir
from cwm_jax.hf.weights import ENTRIES, expected_hf_shapes, hf_names
from cwm_jax.model import CwmModel

# Buffers some exporters save that carry no parameters (RoPE tables are recomputed from the config).
_IGNORED_SUFFIXES = (".rotary_emb.inv_freq",)


def read_hf_config(path: str, **overrides: Any) -> ModelConfig:
    config_path = os.path.join(path, "config.json")
    try:
        with open(config_path) as f:
            hf = json.load(f)
    except FileNotFoundError:
        raise CwmError(f"{config_path}: not found (is {path} a Hugging Face model directory?)") from None
    except json.JSONDecodeError as e:
        raise CwmError(f"{config_path}: invalid JSON ({e})") from None
    return model_config_from_hf(hf, config_path, **overrides)


def from_hf(path: str, dtype: str = "float32", **overrides: Any) -> CwmModel:
    """Loads a Hugging Face CWM directory; params and compute use `dtype` unless overridden.

    Other ModelConfig execution fields (attention_impl, scan_layers, remat, ...) may be overridden.
    """
    _check_dtype(dtype)  # before config.json is read: a bad dtype is the caller's, not the file's
    cfg = read_hf_config(path, **{"param_dtype": dtype, "dtype": dtype, **overrides})
    reader = SafetensorsReader(path)
    _check_tensors(reader, cfg, path)
    np_dtype = jnp.dtype(cfg.param_dtype)
    params: dict[str, Any] = {}
    for entry in ENTRIES:
        parts = [entry.to_ours(reader.get(name), cfg).astype(np_dtype) for name in hf_names(entry, cfg)]
        value = np.stack(parts) if entry.per_layer else parts[0]
        _set(params, entry.path, jnp.asarray(value))
    graphdef, state = nnx.split(nnx.eval_shape(lambda: CwmModel(cfg, nnx.Rngs(0))))
    nnx.replace_by_pure_dict(state, params)
    return nnx.merge(graphdef, state)


def _check_dtype(dtype: str) -> str:
    # numpy casts to anything (int8 would write truncated, mostly-zero weights without a word)
    if dtype not in DTYPES:
        raise CwmError(f"dtype {dtype!r} is not supported; allowed: {', '.join(DTYPES)}")
    return dtype


def _check_tensors(reader: SafetensorsReader, cfg: ModelConfig, path: str):
    expected = expected_hf_shapes(cfg)
    present = {n for n in reader.names() if not n.endswith(_IGNORED_SUFFIXES)}
    missing = sorted(set(expected) - present)
    unexpected = sorted(present - set(expected))
    if missing:
        raise CwmError(f"{path}: missing tensor(s) {_listing(missing)}")
    if unexpected:
        raise CwmError(f"{path}: unexpected tensor(s) {_listing(unexpected)}")
    wrong = [f"{n} has shape {reader.shape(n)}, expected {s}" for n, s in expected.items() if reader.shape(n) != s]
    if wrong:
        raise CwmError(f"{path}: mis-shaped tensor(s): {_listing(wrong)}")


def _listing(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _set(tree: dict, path: tuple[str, ...], value):
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _get(tree: dict, path: tuple[str, ...]):
    for key in path:
        tree = tree[key]
    return tree


def to_hf(model: CwmModel, path: str, dtype: str | None = None, max_shard_bytes: int = 5 * 2**30) -> None:
    """Writes config.json and safetensors that `transformers.CwmForCausalLM.from_pretrained` loads.

    Tensors are saved in `dtype` (default: the model's param dtype), sharded above max_shard_bytes.
    """
    cfg = model.cfg
    dtype = _check_dtype(dtype or cfg.param_dtype)
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    tensors = {}
    for entry in ENTRIES:
        ours = np.asarray(jax.device_get(_get(params, entry.path)))
        for i, name in enumerate(hf_names(entry, cfg)):
            tensors[name] = entry.to_hf(ours[i] if entry.per_layer else ours, cfg).astype(jnp.dtype(dtype))
    write_safetensors_dir(path, tensors, max_shard_bytes)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(hf_config_from_model(cfg, dtype), f, indent=2)
