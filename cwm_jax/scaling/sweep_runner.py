"""`run_sweep(config, workdir)`: every planned run trains here, one after another, or (emit) is printed as
one launch command for a cluster; runs that finished are skipped. Then the results table, fit.json and
plots are written from whatever has finished.

Each run's resolved train config is written to WORKDIR/runs/NAME/config.json and trained from that file,
here and on a cluster alike (`cwm train --config .../config.json`).
"""

import csv
import json
import os
import shlex
import time

import ml_collections

from cwm_common.errors import CwmError
from cwm_common.experiment_config import load_config
from cwm_common.workdir import check_workdir
from cwm_data.shipped_corpus import build_shipped_corpus
from cwm_jax.scaling.scaling_fits import fit_sweep
from cwm_jax.scaling.scaling_plots import plot_fit
from cwm_jax.scaling.sweep_plan import plan_runs
from cwm_jax.scaling.sweep_results import is_finished, run_dir, run_result

LAUNCHERS = {"local": [], "slurm": ["python", "launch/slurm.py"], "tpu_pod": ["python", "launch/tpu_pod.py"]}
TABLE = (
    "run",
    "model",
    "non_embedding_params",
    "tokens",
    "batch_size",
    "lr",
    "steps",
    "compute",
    "final_loss",
    "smoothed_loss",
    "finished",
)


def run_sweep(cfg: ml_collections.ConfigDict, workdir: str, emit: str | None = None, log=print) -> dict:
    from cwm_jax.train.loop import train

    check_workdir(workdir)
    if emit is not None and emit not in LAUNCHERS:
        raise CwmError(f"--emit {emit!r}: launchers are {', '.join(LAUNCHERS)}")
    workdir = os.path.abspath(workdir)
    runs = plan_runs(cfg)
    if cfg.train.data.kind == "shipped":  # one corpus for every run, built before any starts
        shipped = os.path.join(workdir, "data")
        build_shipped_corpus(shipped, cfg.train.data.tokenizer_vocab, log=lambda m: None)
        for run in runs:
            run.config.data.shipped_dir = shipped
    trained: list[str] = []
    skipped: list[str] = []
    commands: list[str] = []
    train_seconds: dict[str, float] = {}
    for run in runs:
        config_path = _write_run_config(workdir, run)
        if is_finished(workdir, run):
            skipped.append(run.name)
            continue
        if emit is not None:
            launcher = LAUNCHERS[emit] + shlex.split(cfg.sweep.launcher_args) + ["--"] if LAUNCHERS[emit] else []
            commands.append(
                shlex.join(launcher + ["cwm", "train", "--config", config_path, "--workdir", run_dir(workdir, run)])
            )
            continue
        log(
            f"== run {len(trained) + len(skipped) + 1}/{len(runs)}: {run.name} "
            f"({run.steps} steps, C = {run.compute:.3g})"
        )
        start = time.perf_counter()
        train(load_config(config_path), run_dir(workdir, run), log=lambda m: None)
        train_seconds[run.name] = time.perf_counter() - start
        trained.append(run.name)
    rows = [run_result(workdir, run, cfg.sweep.smoothing_fraction) for run in runs]
    _write_table(rows, os.path.join(workdir, "results.csv"))
    log(_format_table(rows))
    fit = fit_sweep(rows, cfg.sweep.optimum)
    with open(os.path.join(workdir, "fit.json"), "w") as f:
        json.dump(fit, f, indent=1)
    if "error" in fit:
        log(f"no fit yet: {fit['error']}")
    else:
        plot_fit(
            fit, os.path.join(workdir, "loss_vs_compute.png"), os.path.join(workdir, "hyperparameters_vs_compute.png")
        )
        log(
            f"fits ({len(fit['frontier'])} compute levels): "
            + "; ".join(
                f"{name} exponent {fit[name]['exponent']:+.3f}"
                for name in ("loss_vs_compute", "lr_vs_compute", "batch_size_vs_compute")
            )
        )
    return {
        "runs": runs,
        "trained": trained,
        "skipped": skipped,
        "commands": commands,
        "rows": rows,
        "fit": fit,
        "train_seconds": train_seconds,
    }


def _write_run_config(workdir: str, run) -> str:
    """The run's resolved config; a run that exists with a different config is an error, not a silent mix."""
    path = os.path.join(run_dir(workdir, run), "config.json")
    text = run.config.to_json(indent=1, sort_keys=True)
    if os.path.exists(path):
        with open(path) as f:
            if f.read() != text:
                raise CwmError(
                    f"{path}: this run was started with another config; delete {run_dir(workdir, run)} "
                    "or sweep into a new workdir"
                )
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def _write_table(rows: list[dict], path: str):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, TABLE, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _format_table(rows: list[dict]) -> str:
    lines = [f"{'run':40s} {'N':>9s} {'tokens':>9s} {'batch':>5s} {'lr':>8s} {'C':>9s} {'final':>7s} {'smoothed':>8s}"]
    for r in rows:
        loss = (
            f"{r['final_loss']:7.4f} {r['smoothed_loss']:8.4f}"
            if r["smoothed_loss"] is not None
            else f"{'-':>7s} {'pending':>8s}"
        )
        lines.append(
            f"{r['run']:40s} {r['non_embedding_params']:9,d} {r['tokens']:9,d} {r['batch_size']:5d} "
            f"{r['lr']:8.2g} {r['compute']:9.3g} {loss}"
        )
    return "\n".join(lines)
