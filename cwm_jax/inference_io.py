"""Loading a model and its tokenizer for inference, from any of the three formats this project reads or
writes, told apart by what the directory holds: a Hugging Face CwmForCausalLM directory (config.json +
safetensors), a cwm model directory (model_config.json + Orbax params/), or a training, SFT or RL workdir
(its latest checkpoint's params)."""

import json
import os
import sys

import jax
import orbax.checkpoint as ocp
from flax import nnx

from cwm_common.errors import CwmError
from cwm_data.tokenizer import CwmTokenizer
from cwm_jax.config import ModelConfig, from_mapping
from cwm_jax.hf.convert import from_hf
from cwm_jax.model import CwmModel
from cwm_jax.model_checkpoint import CONFIG_FILE, read_model_dir, restore_target
from cwm_jax.sharding import ShardingRules
from cwm_jax.train.checkpoints import intact_step, restore_params

HF_CONFIG = "config.json"


def load_model(
    path: str, mesh: jax.sharding.Mesh | None = None, rules: ShardingRules | None = None, **overrides
) -> CwmModel:
    """The model saved at `path`, whichever the format, its params sharded over `mesh` by `rules` (default:
    the default param rules; without a mesh: on this process's first device); `overrides` change execution
    fields (dtype, attention_impl, ...)."""
    if os.path.exists(os.path.join(path, CONFIG_FILE)):
        return read_model_dir(path, mesh, rules, **overrides)
    if os.path.exists(os.path.join(path, HF_CONFIG)):
        return from_hf(path, mesh=mesh, rules=rules, **overrides)
    if os.path.isdir(os.path.join(path, "checkpoints")):
        return _restore_trainer_params(path, mesh, rules, overrides)
    raise CwmError(
        f"{path}: not a model: no {CONFIG_FILE} (cwm model directory), {HF_CONFIG} (Hugging Face "
        f"directory) or checkpoints/ (training workdir)"
    )


def _restore_trainer_params(
    workdir: str, mesh: jax.sharding.Mesh | None, rules: ShardingRules | None, overrides: dict
) -> CwmModel:
    """The params of a training run's latest checkpoint (its manifest holds the model config)."""
    directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    step, skipped = intact_step(directory, ocp.CheckpointManager(directory).all_steps())
    for newer, why in skipped:
        print(f"warning: skipping checkpoint step {newer}: {why}; loading step {step}", file=sys.stderr)
    if step is None:
        raise CwmError(f"{workdir}: no checkpoint in checkpoints/")
    manifest = json.loads(open(os.path.join(workdir, "checkpoints", str(step), "manifest", "metadata")).read())
    cfg = from_mapping({**manifest["config"]["model"], **overrides})
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: CwmModel(cfg, nnx.Rngs(0))))
    nnx.replace_by_pure_dict(abstract, restore_params(workdir, step, restore_target(abstract, mesh, rules)))
    return nnx.merge(graphdef, abstract)


def find_tokenizer(
    explicit: str | None, *model_dirs: str | None, how_to_give: str = "give --tokenizer"
) -> CwmTokenizer:
    """An explicit tokenizer file, else tokenizer.model in the model directory or in a workdir's data/;
    `how_to_give` tells the user how to name one (a flag, or a config field)."""
    candidates = [explicit] if explicit else []
    for directory in filter(None, model_dirs):
        candidates += [os.path.join(directory, "tokenizer.model"), os.path.join(directory, "data", "tokenizer.model")]
    for path in candidates:
        if os.path.exists(path):
            return CwmTokenizer.load(path)
    raise CwmError(f"no tokenizer found (looked at {', '.join(candidates) or 'nothing'}); {how_to_give}")


def check_vocab(model_cfg: ModelConfig, tokenizer: CwmTokenizer):
    if tokenizer.vocab_size > model_cfg.vocab_size:
        raise CwmError(f"tokenizer has {tokenizer.vocab_size} tokens but the model only {model_cfg.vocab_size}")
