"""Checks an experiment ConfigDict before anything runs: every error names the field and the rule."""

from cwm_common.config_rules import config_error, require, require_choice, require_int
from cwm_jax.config import ModelConfig, from_mapping
from cwm_jax.train.schedule import SCHEDULES

DATA_KINDS = ("synthetic", "shipped", "pipeline")
MODES = ("pretrain", "sft")


def check_train_config(cfg) -> ModelConfig:
    """Validates the experiment; returns the model config it describes."""
    for field in (
        "steps",
        "batch_size",
        "grad_accum",
        "checkpoint_every",
        "keep_checkpoints",
        "log_every",
        "data.seq_len",
    ):
        require_int(cfg, field)
    for field in ("optimizer.warmup_steps", "profile_start_step", "data.num_workers", "data.virtual_shards"):
        require_int(cfg, field, minimum=0)
    require_int(cfg, "profile_steps")
    require(
        cfg.batch_size % cfg.grad_accum == 0,
        "grad_accum",
        f"({cfg.grad_accum}) must divide batch_size ({cfg.batch_size})",
    )
    opt = cfg.optimizer
    require_choice(cfg, "optimizer.schedule", SCHEDULES)
    for field, ok, rule in (
        ("peak_lr", opt.peak_lr > 0, "> 0"),
        ("decay_factor", opt.decay_factor >= 1, ">= 1"),
        ("clip_norm", opt.clip_norm > 0, "> 0"),
        ("weight_decay", opt.weight_decay >= 0, ">= 0"),
        ("b1", 0 <= opt.b1 < 1, "in [0, 1)"),
        ("b2", 0 <= opt.b2 < 1, "in [0, 1)"),
        ("wsd_decay_fraction", 0 < opt.wsd_decay_fraction <= 1, "in (0, 1]"),
    ):
        require(ok, f"optimizer.{field}", f"must be {rule}, got {opt[field]!r}")
    require(cfg.z_loss >= 0, "z_loss", f"must be >= 0, got {cfg.z_loss}")
    require_choice(cfg, "mode", MODES)
    data = cfg.data
    require_choice(cfg, "data.kind", DATA_KINDS)
    require(
        0 <= data.keep_observation_prob <= 1,
        "data.keep_observation_prob",
        f"must be in [0, 1], got {data.keep_observation_prob}",
    )
    if cfg.mode == "sft":
        require(data.kind != "synthetic", "mode", "is 'sft', which needs chat data (data.kind shipped or pipeline)")
        require(
            data.keep_observation_prob == 0,
            "data.keep_observation_prob",
            "must be 0 in sft mode (loss on assistant tokens only)",
        )
        if data.kind == "pipeline" and any(s["kind"] != "agent" for s in data.sources):
            raise config_error("data.sources", "must all be kind 'agent' in sft mode")
    if data.kind == "shipped":
        require(
            data.tokenizer_vocab + 256 == cfg.model.vocab_size,
            "data.tokenizer_vocab",
            f"({data.tokenizer_vocab}) + 256 specials must equal model.vocab_size ({cfg.model.vocab_size})",
        )
    if data.kind == "pipeline":
        require(bool(data.sources), "data.sources", "is empty (data.kind 'pipeline' reads the sources listed there)")
    return from_mapping(dict(cfg.model))
