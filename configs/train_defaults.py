"""Defaults shared by training experiments: the CWM pre/mid-training recipe on one host's devices."""

import ml_collections

from cwm_jax.presets import preset_fields
from cwm_jax.sharding import ACTIVATION_RULES, PARAM_RULES
from cwm_jax.train.optimizer import cwm_optimizer_config


def base(model: str = "cwm-tiny") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict(preset_fields(model))
    # data.kind: synthetic (random tokens), shipped (the corpus a fresh clone builds, into shipped_dir or
    # WORKDIR/data), pipeline (your sources).
    c.data = ml_collections.ConfigDict(
        dict(
            kind="synthetic",
            seq_len=128,
            tokenizer_vocab=768,
            tokenizer="",
            shipped_dir="",
            sources=[],
            weights=ml_collections.ConfigDict(dict(trace=0.6, agent=0.1, text=0.3)),
            keep_observation_prob=0.5,
            num_workers=0,
            # > 0: records in this many fixed shards, so a run can resume on another process count with the same
            # batches (a multiple of every process count you will use; it must divide batch_size)
            virtual_shards=0,
        )
    )
    c.mode = "pretrain"  # or "sft": chat data only, loss on assistant tokens only
    c.steps = 100
    c.batch_size = 8  # global, in sequences
    c.grad_accum = 1
    c.optimizer = cwm_optimizer_config()
    c.z_loss = 0.0
    c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1, sequence=1))
    # logical axis -> mesh axis (cwm_jax/sharding.py); e.g. --config.param_rules.kv_heads=None replicates
    c.param_rules = ml_collections.ConfigDict(dict(PARAM_RULES))
    c.activation_rules = ml_collections.ConfigDict(dict(ACTIVATION_RULES))
    c.checkpoint_every = 100
    c.keep_checkpoints = 3
    c.log_every = 10
    c.seed = 0
    c.peak_flops_per_device = 0.0  # 0: from the device kind (cwm_jax/train/flops.py)
    c.profile_start_step = 0  # > 0: an XLA profile of profile_steps steps from this one, in WORKDIR/profile
    c.profile_steps = 3
    return c
