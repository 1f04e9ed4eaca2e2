"""What each sweep run reached: final and smoothed loss from its metrics.jsonl, and its loss-vs-compute
curve. A step logged twice (a run that crashed after logging it and resumed from an earlier checkpoint)
counts once, as the resumed run logged it."""

import json
import os

import numpy as np

from cwm_jax.scaling.sweep_plan import SweepRun


def run_dir(workdir: str, run: SweepRun) -> str:
    return os.path.join(workdir, "runs", run.name)


def is_finished(workdir: str, run: SweepRun) -> bool:
    # Orbax renames a step's directory to its number only once the save is complete.
    return os.path.isdir(os.path.join(run_dir(workdir, run), "checkpoints", str(run.steps)))


def losses_by_step(metrics_path: str) -> dict[int, float]:
    losses = {}
    if os.path.exists(metrics_path):
        with open(metrics_path) as f:
            for line in f:
                if line.strip():
                    record = json.loads(line)
                    losses[record["step"]] = record["loss"]
    return losses


def run_result(workdir: str, run: SweepRun, smoothing_fraction: float) -> dict:
    """One row of the results table (losses None until the run finished), plus its smoothed curve."""
    row = {
        "run": run.name,
        "model": run.model,
        "non_embedding_params": run.non_embedding_params,
        "flops_per_token": run.flops_per_token,
        "token_budget": run.token_budget,
        "tokens": run.tokens,
        "batch_size": run.batch_size,
        "batch_tokens": run.tokens // run.steps,
        "lr": run.lr,
        "steps": run.steps,
        "compute": run.compute,
        "finished": is_finished(workdir, run),
        "final_loss": None,
        "smoothed_loss": None,
        "curve": [],
    }
    losses = losses_by_step(os.path.join(run_dir(workdir, run), "metrics.jsonl"))
    if not row["finished"] or any(step not in losses for step in range(1, run.steps + 1)):
        return row
    values = np.array([losses[step] for step in range(1, run.steps + 1)])
    window = max(1, round(smoothing_fraction * run.steps))
    smoothed = np.convolve(values, np.ones(window) / window, mode="valid")  # trailing mean over `window` steps
    tokens_per_step = run.tokens // run.steps
    row.update(
        final_loss=float(values[-1]),
        smoothed_loss=float(smoothed[-1]),
        curve=[(run.flops_per_token * tokens_per_step * (window + i), float(v)) for i, v in enumerate(smoothed)],
    )
    return row
