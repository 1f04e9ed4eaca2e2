"""Learning-rate schedules: CWM's linear warmup + cosine decay by 100x, warmup-stable-decay, constant."""

import optax

SCHEDULES = ("cosine", "wsd", "constant")


def learning_rate_schedule(
    kind: str,
    peak: float,
    warmup_steps: int,
    total_steps: int,
    decay_factor: float = 100.0,
    wsd_decay_fraction: float = 0.2,
) -> optax.Schedule:
    """kind: cosine (to peak/decay_factor at total_steps), wsd (flat, then linear to peak/decay_factor over the
    last wsd_decay_fraction of steps), constant (flat after warmup, as CWM's SFT)."""
    floor = peak / decay_factor
    warmup = optax.linear_schedule(0.0, peak, max(warmup_steps, 1))
    rest = max(total_steps - warmup_steps, 1)
    if kind == "cosine":
        after = optax.cosine_decay_schedule(peak, rest, alpha=floor / peak)
    elif kind == "wsd":
        decay = max(int(rest * wsd_decay_fraction), 1)
        after = optax.join_schedules(
            [optax.constant_schedule(peak), optax.linear_schedule(peak, floor, decay)], [rest - decay]
        )
    else:
        after = optax.constant_schedule(peak)
    return optax.join_schedules([warmup, after], [warmup_steps])
