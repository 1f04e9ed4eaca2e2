"""The toy sweep's wall time and the sweep runner's overhead per run, next to the training it drives.

    python bench/sweep_overhead.py [--config configs/sweeps/toy.py] [--config.FIELD=VALUE ...]

Three measurements, in one process:
  1. the whole sweep from nothing: wall time, the sum of the runs' own train() time, and the rest (corpus
     build, plan, per-run config files, results table, fits, plots) per run and as a share of the wall time;
  2. the same sweep again: every run is finished, so this is the runner's fixed cost (collect, fit, plot);
  3. one run re-made through its emitted command (`cwm train --config runs/NAME/config.json` in a fresh
     process, as a cluster would run it) against its in-process train() time: the per-run process cost.
"""

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

from cwm_common.experiment_config import load_config
from cwm_jax.scaling.sweep_results import run_dir
from cwm_jax.scaling.sweep_runner import run_sweep


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/sweeps/toy.py")
    args, overrides = parser.parse_known_args()
    cfg = load_config(args.config, overrides)
    with tempfile.TemporaryDirectory() as workdir:
        start = time.perf_counter()
        first = run_sweep(cfg, workdir, log=lambda m: None)
        wall = time.perf_counter() - start
        trained = sum(first["train_seconds"].values())
        n = len(first["runs"])
        print(
            f"sweep of {n} runs from nothing: {wall:.1f} s wall, {trained:.1f} s in train(); runner overhead "
            f"{(wall - trained) / n:.2f} s per run ({(wall - trained) / wall:.1%} of the wall time)"
        )
        fit = first["fit"]
        if "error" not in fit:
            print(
                "fit: "
                + "; ".join(
                    f"{name} {fit[name]['coefficient']:.3g} C^{fit[name]['exponent']:+.3f} "
                    f"(+- {fit[name]['exponent_stderr']:.3f})"
                    for name in ("loss_vs_compute", "lr_vs_compute", "batch_size_vs_compute")
                )
            )

        start = time.perf_counter()
        again = run_sweep(cfg, workdir, log=lambda m: None)
        print(
            f"the same sweep again ({len(again['skipped'])} of {n} skipped as finished): "
            f"{time.perf_counter() - start:.1f} s (collect, fit, plot)"
        )

        run = first["runs"][-1]
        shutil.rmtree(os.path.join(run_dir(workdir, run), "checkpoints"))
        command = run_sweep(cfg, workdir, emit="local", log=lambda m: None)["commands"][0]
        argv = shlex.split(command)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cwm_cli.main", *argv[1:]], check=True, capture_output=True)
        process = time.perf_counter() - start
        inside = first["train_seconds"][run.name]
        print(
            f"{run.name} through its emitted command: {process:.1f} s in a fresh process vs {inside:.1f} s "
            f"in-process ({process / inside:.2f}x; process start and compilation-cache load per run)"
        )


if __name__ == "__main__":
    main()
