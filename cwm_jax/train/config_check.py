"""Checks an experiment ConfigDict before anything runs: every error names the field and the rule."""

from cwm_common.errors import CwmError
from cwm_jax.config import ModelConfig, from_mapping
from cwm_jax.train.schedule import SCHEDULES

DATA_KINDS = ("synthetic", "shipped", "pipeline")
MODES = ("pretrain", "sft")


def _fail(field: str, rule: str):
    raise CwmError(f"config field '{field}' {rule}")


def _positive_int(cfg, field: str, minimum: int = 1):
    value = cfg
    for part in field.split("."):
        value = value[part]
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        _fail(field, f"must be an integer >= {minimum}, got {value!r}")
    return value


def check_train_config(cfg) -> ModelConfig:
    """Validates the experiment; returns the model config it describes."""
    for field in ("steps", "batch_size", "grad_accum", "checkpoint_every", "keep_checkpoints", "log_every",
                  "data.seq_len"):
        _positive_int(cfg, field)
    _positive_int(cfg, "optimizer.warmup_steps", minimum=0)
    _positive_int(cfg, "profile_start_step", minimum=0)
    _positive_int(cfg, "profile_steps")
    _positive_int(cfg, "data.num_workers", minimum=0)
    _positive_int(cfg, "data.virtual_shards", minimum=0)
    if cfg.batch_size % cfg.grad_accum:
        _fail("grad_accum", f"({cfg.grad_accum}) must divide batch_size ({cfg.batch_size})")
    opt = cfg.optimizer
    if opt.schedule not in SCHEDULES:
        _fail("optimizer.schedule", f"is {opt.schedule!r}; allowed: {', '.join(SCHEDULES)}")
    for field, ok, rule in (("peak_lr", opt.peak_lr > 0, "> 0"), ("decay_factor", opt.decay_factor >= 1, ">= 1"),
                            ("clip_norm", opt.clip_norm > 0, "> 0"), ("weight_decay", opt.weight_decay >= 0, ">= 0"),
                            ("b1", 0 <= opt.b1 < 1, "in [0, 1)"), ("b2", 0 <= opt.b2 < 1, "in [0, 1)"),
                            ("wsd_decay_fraction", 0 < opt.wsd_decay_fraction <= 1, "in (0, 1]")):
        if not ok:
            _fail(f"optimizer.{field}", f"must be {rule}, got {opt[field]!r}")
    if cfg.z_loss < 0:
        _fail("z_loss", f"must be >= 0, got {cfg.z_loss}")
    if cfg.mode not in MODES:
        _fail("mode", f"is {cfg.mode!r}; allowed: {', '.join(MODES)}")
    data = cfg.data
    if data.kind not in DATA_KINDS:
        _fail("data.kind", f"is {data.kind!r}; allowed: {', '.join(DATA_KINDS)}")
    if not 0 <= data.keep_observation_prob <= 1:
        _fail("data.keep_observation_prob", f"must be in [0, 1], got {data.keep_observation_prob}")
    if cfg.mode == "sft":
        if data.kind == "synthetic":
            _fail("mode", "is 'sft', which needs chat data (data.kind shipped or pipeline)")
        if data.keep_observation_prob != 0:
            _fail("data.keep_observation_prob", "must be 0 in sft mode (loss on assistant tokens only)")
        if data.kind == "pipeline" and any(s["kind"] != "agent" for s in data.sources):
            _fail("data.sources", "must all be kind 'agent' in sft mode")
    if data.kind == "shipped" and data.tokenizer_vocab + 256 != cfg.model.vocab_size:
        _fail("data.tokenizer_vocab", f"({data.tokenizer_vocab}) + 256 specials must equal model.vocab_size "
                                      f"({cfg.model.vocab_size})")
    if data.kind == "pipeline" and not data.sources:
        _fail("data.sources", "is empty (data.kind 'pipeline' reads the sources listed there)")
    return from_mapping(dict(cfg.model))
