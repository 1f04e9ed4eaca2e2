"""from_hf / to_hf: a `CwmForCausalLM` safetensors directory <-> a ready CwmModel."""

import collections
import functools
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from cwm_common.errors import CwmError
from cwm_jax.config import DTYPES, ModelConfig
from cwm_jax.hf.config import hf_config_from_model, model_config_from_hf
from cwm_jax.hf.safetensors_dir import SafetensorsReader, write_safetensors_dir
from cwm_jax.hf.weights import ENTRIES, Box, Entry, Layout, expected_hf_shapes, hf_names
from cwm_jax.model import CwmModel
from cwm_jax.sharding import ShardingRules, load_shardings

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


def from_hf(
    path: str, dtype: str = "float32", mesh: Mesh | None = None, rules: ShardingRules | None = None, **overrides: Any
) -> CwmModel:
    """Loads a Hugging Face CWM directory; params and compute use `dtype` unless overridden.

    With a `mesh`, every parameter is sharded by `rules` (default: the default param rules) and each
    device's part is read from the files on its own (a process reads only what its devices hold; host memory
    stays about one tensor); without one, the model lands whole on this process's first device. Other
    ModelConfig execution fields (attention_impl, scan_layers, remat, ...) may be overridden.
    """
    _check_dtype(dtype)  # before config.json is read: a bad dtype is the caller's, not the file's
    cfg = read_hf_config(path, **{"param_dtype": dtype, "dtype": dtype, **overrides})
    reader = SafetensorsReader(path)
    _check_tensors(reader, cfg, path)
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: CwmModel(cfg, nnx.Rngs(0))))
    shapes, shardings = nnx.to_pure_dict(abstract), load_shardings(abstract, mesh, rules)
    params: dict[str, Any] = {}
    for entry in ENTRIES:
        shape, sharding = _get(shapes, entry.path).shape, _get(shardings, entry.path)
        if entry.per_layer:
            value = _load_stacked(reader, entry, cfg, shape, sharding)
        else:
            value = _load_tensor(reader, entry.hf_name, entry.layout, cfg, shape, sharding)
        _set(params, entry.path, value)
    nnx.replace_by_pure_dict(abstract, params)
    return nnx.merge(graphdef, abstract)


def _load_tensor(
    reader: SafetensorsReader,
    name: str,
    layout: Layout,
    cfg: ModelConfig,
    shape: tuple[int, ...],
    sharding: NamedSharding,
) -> jax.Array:
    """One HF tensor as our array of `shape`, each device's part read from the file by itself."""
    dtype = jnp.dtype(cfg.param_dtype)

    def part(box: Box) -> np.ndarray:
        read = reader.read_slice(name, layout.hf_box(box, cfg))
        return np.ascontiguousarray(layout.to_ours(read, box, cfg), dtype=dtype)

    return _place(shape, sharding, part)


def _load_stacked(
    reader: SafetensorsReader, entry: Entry, cfg: ModelConfig, shape: tuple[int, ...], sharding: NamedSharding
) -> jax.Array:
    """A per-layer entry as our [n_layers, ...] array, written in on device one layer at a time (the host
    never holds the stack)."""
    # The rules never shard `layers`, so a layer is laid out like the stack without its first dimension.
    layer_sharding = NamedSharding(sharding.mesh, PartitionSpec(*sharding.spec[1:]))
    stack = jnp.zeros(shape, cfg.param_dtype, device=sharding)
    for i, name in enumerate(hf_names(entry, cfg)):
        stack = _put_layer(stack, _load_tensor(reader, name, entry.layout, cfg, shape[1:], layer_sharding), i)
        # The host parts of a layer live until its write has run: wait, so the next is not read alongside.
        stack.block_until_ready()
    return stack


@functools.partial(jax.jit, donate_argnums=0)
def _put_layer(stack: jax.Array, layer: jax.Array, i) -> jax.Array:
    return jax.lax.dynamic_update_index_in_dim(stack, layer, i, 0)


def _place(shape: tuple[int, ...], sharding: NamedSharding, part: Callable[[Box], np.ndarray]) -> jax.Array:
    """An array laid out by `sharding` whose devices' parts are `part(box)` for their boxes; replicas share
    one part, so each distinct box is made once."""
    parts: dict[tuple[tuple[int, int], ...], np.ndarray] = {}

    def device_part(index: tuple[slice, ...] | None) -> np.ndarray:
        assert index is not None  # make_array_from_callback passes every device its index
        box = tuple(slice(*s.indices(n)[:2]) for s, n in zip(index, shape, strict=True))
        key = tuple((s.start, s.stop) for s in box)
        if key not in parts:
            parts[key] = part(box)
        return parts[key]

    array = jax.make_array_from_callback(shape, sharding, device_part)
    parts.clear()  # the devices hold the parts now: let go here, not whenever the callback is collected
    return array


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

    Tensors are saved in `dtype` (default: the model's param dtype), sharded above max_shard_bytes. Params
    sharded over devices or processes are gathered one tensor at a time and each file is written as it
    fills. In a multi-process run every process calls it (the gathers are collective); process 0 writes.
    """
    cfg = model.cfg
    dtype = _check_dtype(dtype or cfg.param_dtype)
    tensors = _hf_tensors(nnx.to_pure_dict(nnx.state(model, nnx.Param)), cfg, jnp.dtype(dtype))
    if jax.process_index() == 0:
        write_safetensors_dir(path, tensors, max_shard_bytes)
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(hf_config_from_model(cfg, dtype), f, indent=2)
    else:
        collections.deque(tensors, maxlen=0)  # take part in every gather, keep nothing
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("to_hf")  # every process returns once the files are written


def _hf_tensors(params: dict, cfg: ModelConfig, dtype: np.dtype) -> Iterator[tuple[str, np.ndarray]]:
    """(HF name, tensor) pairs in `dtype`, each brought to the host only when it is asked for."""
    for entry in ENTRIES:
        ours = _get(params, entry.path)
        for i, name in enumerate(hf_names(entry, cfg)):
            value = _layer(ours, i) if entry.per_layer else ours
            yield name, entry.layout.to_hf(_gather(value), cfg).astype(dtype, copy=False)


@jax.jit
def _layer(stack: jax.Array, i) -> jax.Array:
    return jax.lax.dynamic_index_in_dim(stack, i, 0, keepdims=False)


def _gather(x: jax.Array) -> np.ndarray:
    """The whole array on this host, gathered across processes when it spans them."""
    if x.is_fully_addressable:
        return np.asarray(jax.device_get(x))
    return multihost_utils.process_allgather(x, tiled=True)
