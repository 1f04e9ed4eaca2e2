"""Scaling-law sweeps: power-law fits recover known exponents with honest uncertainties; plans count compute
as CWM does; a 3x2 toy sweep of tiny models trains, fits and plots end to end, skips what finished, and
emits launch commands that train a run exactly as the sweep would."""

import itertools
import json
import os
import shlex
import subprocess
import sys

import numpy as np
import pytest

from cwm_common.errors import CwmError
from cwm_common.experiment_config import load_config
from cwm_jax.config import from_mapping
from cwm_jax.scaling.hyperparameter_optimum import quadratic_optimum
from cwm_jax.scaling.power_law import fit_power_law
from cwm_jax.scaling.scaling_fits import fit_sweep
from cwm_jax.scaling.sweep_plan import plan_runs
from cwm_jax.scaling.sweep_runner import run_sweep
from cwm_jax.train.flops import flops_per_token


def test_power_law_fit_recovers_known_exponents_and_its_uncertainty_is_calibrated():
    rng = np.random.default_rng(0)
    compute = np.geomspace(1e18, 1e21, 12)
    inside = 0
    for _trial in range(200):
        lr = 19.29 * compute**-0.177 * np.exp(rng.normal(0, 0.05, compute.shape))
        fit = fit_power_law(compute, lr)
        assert abs(fit.exponent + 0.177) < 0.03 and abs(fit.coefficient / 19.29 - 1) < 2.0
        assert fit.exponent_stderr is not None  # 12 points: enough for a standard error
        inside += abs(fit.exponent + 0.177) < 2 * fit.exponent_stderr
    assert 0.88 <= inside / 200 <= 0.99  # ~95% of 2-sigma intervals cover the true exponent
    exact = fit_power_law(compute, 30.17 * compute**0.231)
    assert exact.exponent == pytest.approx(0.231, abs=1e-9) and exact.coefficient == pytest.approx(30.17, rel=1e-6)
    with pytest.raises(ValueError, match="two distinct x"):
        fit_power_law([1e18, 1e18], [1.0, 2.0])


def test_plans_count_compute_as_cwm_does():
    cfg = load_config("configs/sweeps/cwm_proxies.py")
    runs = plan_runs(cfg)
    assert len({r.model for r in runs}) == 8 and len(runs) == 8 * 16
    for r in runs:
        model = from_mapping(dict(r.config.model))
        m = flops_per_token(model, 8192)
        assert r.flops_per_token == m and r.token_budget == int(40 * m)  # D / M = 40
        assert r.compute == m * r.steps * r.batch_size * 8192 and abs(r.tokens / r.token_budget - 1) < 0.01
        assert r.batch_size in (32, 64, 128, 256, 512) and 1e-4 <= r.lr <= 3e-3
        assert r.config.optimizer.peak_lr == r.lr and r.config.steps == r.steps
    # The paper's 8 compute scales over 2e18-2e20, each about 1.9x the last; depth changes bring CWM's interleave.
    scales = sorted({r.flops_per_token * r.token_budget for r in runs})
    assert len(scales) == 8 and 1.8e18 < scales[0] < 2.2e18 and 1.8e20 < scales[-1] < 2.2e20
    assert all(1.4 < b / a < 2.6 for a, b in itertools.pairwise(scales))
    for r in runs:
        assert (
            len(r.config.model.layer_types) == r.config.model.n_layers
            and r.config.model.layer_types[0] == "full_attention"
        )
    toy = load_config("configs/sweeps/toy.py", ["--config.sweep.data_to_model_ratio=40.0"])
    with pytest.raises(CwmError, match="config field 'sweep.tokens' or 'sweep.data_to_model_ratio': give exactly one"):
        plan_runs(toy)


@pytest.fixture(scope="module")
def toy_sweep(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("sweep"))
    cfg = load_config("configs/sweeps/toy.py", ["--config.sweep.tokens=(10240,)"])  # 3 sizes x 2 lrs
    return workdir, cfg, run_sweep(cfg, workdir, log=lambda m: None)


@pytest.mark.slow
def test_toy_sweep_fits_through_its_points(toy_sweep):
    workdir, _, result = toy_sweep
    assert len(result["trained"]) == 6 and all(r["finished"] for r in result["rows"])
    with open(os.path.join(workdir, "fit.json")) as f:
        fit = json.load(f)
    assert len(fit["frontier"]) == 3
    for name in ("loss_vs_compute", "lr_vs_compute", "batch_size_vs_compute"):
        assert all(np.isfinite(fit[name][k]) for k in ("coefficient", "exponent", "exponent_stderr")), fit[name]
    law = fit["loss_vs_compute"]
    for point in fit["frontier"]:
        predicted = law["coefficient"] * point["compute"] ** law["exponent"]
        assert abs(predicted / point["smoothed_loss"] - 1) < 0.05
        assert point["smoothed_loss"] == min(
            r["smoothed_loss"] for r in result["rows"] if r["compute"] == point["compute"]
        )
    for png in ("loss_vs_compute.png", "hyperparameters_vs_compute.png"):
        assert os.path.getsize(os.path.join(workdir, png)) > 10_000
    with open(os.path.join(workdir, "results.csv")) as f:
        assert len(f.read().splitlines()) == 7


@pytest.mark.slow
def test_resuming_the_sweep_reruns_nothing_and_emitted_commands_train_like_the_sweep(toy_sweep):
    workdir, cfg, first = toy_sweep
    again = run_sweep(cfg, workdir, log=lambda m: None)
    assert again["trained"] == [] and len(again["skipped"]) == 6

    # Lose one run; the sweep emits exactly that run's command, and running it restores the same result.
    lost = first["rows"][0]
    os.rename(os.path.join(workdir, "runs", lost["run"]), os.path.join(workdir, "lost"))
    slurm = cfg.copy_and_resolve_references()
    slurm.sweep.launcher_args = "--nodes 1 --gpus-per-node 8"
    emitted = run_sweep(slurm, workdir, emit="slurm", log=lambda m: None)
    assert len(emitted["commands"]) == 1 and emitted["trained"] == []
    assert emitted["commands"][0].startswith(
        "python launch/slurm.py --nodes 1 --gpus-per-node 8 -- cwm train --config "
    )
    command = shlex.split(run_sweep(cfg, workdir, emit="local", log=lambda m: None)["commands"][0])
    assert command[:2] == ["cwm", "train"]
    subprocess.run([sys.executable, "-m", "cwm_cli.main", *command[1:]], check=True, capture_output=True)
    final = run_sweep(cfg, workdir, log=lambda m: None)
    assert final["trained"] == [] and final["rows"][0]["smoothed_loss"] == pytest.approx(
        lost["smoothed_loss"], abs=1e-6
    )


@pytest.mark.slow
def test_a_run_whose_config_changed_is_not_silently_mixed_in(toy_sweep):
    workdir, cfg, _ = toy_sweep
    changed = load_config("configs/sweeps/toy.py", ["--config.sweep.tokens=(10240,)", "--config.train.z_loss=0.1"])
    with pytest.raises(CwmError, match="was started with another config"):
        run_sweep(changed, workdir, log=lambda m: None)


def test_quadratic_optimum_recovers_the_laws_between_the_samples():
    """8 compute levels whose optimal LR and batch follow the paper's laws; 12 quasi-random runs per level in a
    factor-4 box around the optimum, loss quadratic in log LR and log batch plus noise. The fitted minima give
    the exponents back; the best runs alone are off by the search's resolution."""
    rng = np.random.default_rng(1)
    rows = []
    for level, compute in enumerate(np.geomspace(2e18, 2e20, 8)):
        lr_opt, bs_opt = 19.29 * compute**-0.177, 30.17 * compute**0.231
        for i in range(12):
            lr, bs = lr_opt * 4 ** rng.uniform(-1, 1), bs_opt * 4 ** rng.uniform(-1, 1)
            loss = (
                3.0
                - 0.1 * level
                + 0.2 * np.log(lr / lr_opt) ** 2
                + 0.1 * np.log(bs / bs_opt) ** 2
                + rng.normal(0, 0.002)
            )
            rows.append(
                {
                    "run": f"{level}-{i}",
                    "model": f"m{level}",
                    "token_budget": 1,
                    "compute": compute,
                    "smoothed_loss": loss,
                    "lr": lr,
                    "batch_size": 1,
                    "batch_tokens": bs,
                    "curve": [],
                }
            )
    quadratic, best = fit_sweep(rows, "quadratic"), fit_sweep(rows, "best")
    assert all(p["optimum"] == "quadratic" for p in quadratic["frontier"])
    assert abs(quadratic["lr_vs_compute"]["exponent"] + 0.177) < 0.01
    assert abs(quadratic["batch_size_vs_compute"]["exponent"] - 0.231) < 0.01
    assert abs(best["lr_vs_compute"]["exponent"] + 0.177) > abs(quadratic["lr_vs_compute"]["exponent"] + 0.177)
    # Two runs cannot fit a curve: the best run stands in, and says why.
    assert quadratic_optimum(rows[:2])["method"].startswith("best run (2 runs for 6 coefficients")
    with pytest.raises(CwmError, match="'sweep.optimum' is 'median'"):
        fit_sweep(rows, "median")
