"""A sweep config expanded into runs: model sizes x token budgets x (batch size, learning rate), from a grid
or a quasi-random (Halton) search, with compute counted as CWM does: C = M x D, M = 6 x non-embedding
params + 6 x d x L x S (cwm_jax.train.flops), D = the tokens the run actually trains on."""

import copy
import dataclasses
import itertools
import math
import re

import ml_collections

from cwm_common.config_rules import config_error, require, require_choice
from cwm_common.errors import CwmError
from cwm_jax.config import from_mapping, interleaved_layer_types
from cwm_jax.presets import preset_fields
from cwm_jax.train.flops import flops_per_token


@dataclasses.dataclass(frozen=True)
class SweepRun:
    name: str
    model: str
    token_budget: int  # what the sweep asked for; runs of one model and budget form one compute level
    tokens: int  # what the run trains on: steps x batch x seq_len
    batch_size: int
    lr: float
    steps: int
    non_embedding_params: int
    flops_per_token: float  # M
    config: ml_collections.ConfigDict = dataclasses.field(compare=False, repr=False)

    @property
    def compute(self) -> float:
        return self.flops_per_token * self.tokens


def plan_runs(cfg: ml_collections.ConfigDict) -> list[SweepRun]:
    sweep, seq_len = cfg.sweep, cfg.train.data.seq_len
    require_choice(cfg, "sweep.search", ("grid", "quasi_random"))
    require(bool(sweep.models), "sweep.models", "is empty")
    require(
        bool(sweep.tokens) != (sweep.data_to_model_ratio > 0),
        "sweep.tokens",
        "or 'sweep.data_to_model_ratio': give exactly one",
    )
    runs = []
    for model_name, overrides in sweep.models.items():
        model = _model_config(cfg.train.model, model_name, overrides)
        per_token = flops_per_token(from_mapping(dict(model)), seq_len)
        budgets = list(sweep.tokens) or [int(sweep.data_to_model_ratio * per_token)]
        for tokens in budgets:
            for batch, lr in _hyperparameters(sweep):
                steps = max(1, round(tokens / (batch * seq_len)))
                name = re.sub(r"[^A-Za-z0-9_.+-]", "-", f"{model_name}_D{tokens:.3g}_B{batch}_lr{lr:.3g}")
                runs.append(
                    SweepRun(
                        name,
                        model_name,
                        tokens,
                        steps * batch * seq_len,
                        batch,
                        lr,
                        steps,
                        from_mapping(dict(model)).non_embedding_params(),
                        per_token,
                        _run_config(cfg, model, batch, lr, steps),
                    )
                )
    names = [r.name for r in runs]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise CwmError(f"sweep runs are not distinct (same model, tokens, batch and lr): {duplicated[0]}")
    return runs


def _model_config(base_model, name: str, overrides) -> ml_collections.ConfigDict:
    overrides = dict(overrides)
    model = (
        ml_collections.ConfigDict(preset_fields(overrides.pop("preset")))
        if "preset" in overrides
        else copy.deepcopy(base_model)
    )
    unknown = sorted(set(overrides) - set(model))
    if unknown:
        raise config_error(f"sweep.models.{name}", f"names an unknown model field '{unknown[0]}'")
    model.update(overrides)
    if "n_layers" in overrides and "layer_types" not in overrides:  # CWM's interleave at the new depth
        model.layer_types = interleaved_layer_types(model.n_layers)
    return model


def _hyperparameters(sweep) -> list[tuple[int, float]]:
    if sweep.search == "grid":
        return list(itertools.product(sweep.batch_sizes, sweep.lrs))
    require(sweep.samples >= 1, "sweep.samples", f"must be >= 1 for a quasi_random search, got {sweep.samples}")
    (lr_lo, lr_hi), (bs_lo, bs_hi) = sweep.lr_range, sweep.batch_range
    points = []
    for i in range(1, sweep.samples + 1):  # Halton points in base 2 (lr) and 3 (batch), log-uniform
        lr = math.exp(math.log(lr_lo) + _radical_inverse(i, 2) * math.log(lr_hi / lr_lo))
        batch = math.exp(math.log(bs_lo) + _radical_inverse(i, 3) * math.log(bs_hi / bs_lo))
        points.append((2 ** round(math.log2(batch)), float(f"{lr:.3g}")))  # powers of 2: few compiled shapes
    return sorted(set(points))


def _radical_inverse(i: int, base: int) -> float:
    value, scale = 0.0, 1.0 / base
    while i:
        i, digit = divmod(i, base)
        value += digit * scale
        scale /= base
    return value


def _run_config(cfg, model, batch: int, lr: float, steps: int) -> ml_collections.ConfigDict:
    run = copy.deepcopy(cfg.train)
    run.model = model
    run.batch_size = batch
    run.steps = steps
    run.optimizer.peak_lr = lr
    run.optimizer.warmup_steps = round(cfg.sweep.warmup_fraction * steps)
    return run
