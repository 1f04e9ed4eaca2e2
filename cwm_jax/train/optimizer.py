"""CWM's optimizer: AdamW (0.9, 0.95), weight decay 0.1, global-norm clipping at 1.0 (CWM.md section 5.1)."""

from typing import Any

import ml_collections
import optax

from cwm_jax.train.schedule import learning_rate_schedule


def cwm_optimizer_config(**changes: Any) -> ml_collections.ConfigDict:
    """The pre/mid-training recipe's optimizer fields (what configs' `optimizer` block holds), with changes."""
    fields = dict(
        peak_lr=8e-4,
        warmup_steps=2000,
        schedule="cosine",
        decay_factor=100.0,
        wsd_decay_fraction=0.2,
        b1=0.9,
        b2=0.95,
        eps=1e-8,
        weight_decay=0.1,
        clip_norm=1.0,
    )
    return ml_collections.ConfigDict({**fields, **changes})


def make_optimizer(opt_cfg, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
    schedule = learning_rate_schedule(
        opt_cfg.schedule,
        opt_cfg.peak_lr,
        opt_cfg.warmup_steps,
        total_steps,
        opt_cfg.decay_factor,
        opt_cfg.wsd_decay_fraction,
    )
    optimizer = optax.chain(
        optax.clip_by_global_norm(opt_cfg.clip_norm),
        optax.adamw(
            schedule, b1=opt_cfg.b1, b2=opt_cfg.b2, eps=opt_cfg.eps, weight_decay=opt_cfg.weight_decay, mask=decay_mask
        ),
    )
    return optimizer, schedule


def decay_mask(params: dict) -> dict:
    """True where weight decay applies: every parameter except the RMSNorm scales (`*norm` modules)."""

    def walk(tree, in_norm: bool):
        if isinstance(tree, dict):
            return {k: walk(v, in_norm or str(k).endswith("norm")) for k, v in tree.items()}
        return not in_norm

    return walk(params, False)
