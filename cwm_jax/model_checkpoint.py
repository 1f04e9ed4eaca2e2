"""A model on disk: `model_config.json` plus the parameters as an Orbax checkpoint under `params/`."""

import json
import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import nnx

from cwm_common.errors import CwmError
from cwm_jax.config import from_mapping
from cwm_jax.model import CwmModel
from cwm_jax.sharding import ShardingRules, load_shardings

CONFIG_FILE = "model_config.json"
PARAMS_DIR = "params"


def save_model(model: CwmModel, directory: str) -> None:
    directory = os.path.abspath(directory)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, CONFIG_FILE), "w") as f:
        json.dump(model.cfg.to_dict(), f, indent=2)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(os.path.join(directory, PARAMS_DIR), nnx.to_pure_dict(nnx.state(model, nnx.Param)), force=True)
    checkpointer.wait_until_finished()


def read_model_dir(
    directory: str, mesh: jax.sharding.Mesh | None = None, rules: ShardingRules | None = None, **overrides: Any
) -> CwmModel:
    """Restores a saved model, sharded over `mesh` as `from_hf` shards (without one: on this process's first
    device); `overrides` change execution fields (dtype, attention_impl, ...)."""
    directory = os.path.abspath(directory)
    config_path = os.path.join(directory, CONFIG_FILE)
    if not os.path.exists(config_path):
        raise CwmError(f"{config_path}: not found (is {directory} a cwm model directory?)")
    with open(config_path) as f:
        cfg = from_mapping({**json.load(f), **overrides})
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: CwmModel(cfg, nnx.Rngs(0))))
    target = restore_target(abstract, mesh, rules)
    try:
        restored = ocp.StandardCheckpointer().restore(os.path.join(directory, PARAMS_DIR), target)
    except (ValueError, FileNotFoundError) as e:
        raise CwmError(f"{directory}/{PARAMS_DIR}: parameters do not match {CONFIG_FILE} ({e})") from None
    nnx.replace_by_pure_dict(abstract, restored)
    return nnx.merge(graphdef, abstract)


def restore_target(abstract, mesh: jax.sharding.Mesh | None, rules: ShardingRules | None = None) -> dict:
    """The parameters' shapes and dtypes, each with the sharding a load onto `mesh` gives it: Orbax restores
    each device's part straight there."""
    return jax.tree.map(
        lambda leaf, sharding: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding),
        nnx.to_pure_dict(abstract),
        load_shardings(abstract, mesh, rules),
    )
