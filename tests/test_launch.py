"""Launchers and whole-process behaviour: dry runs, two cooperating processes, resume after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, "-m", "cwm_cli.main", "train", "--config", "configs/tiny.py"]


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device unless asked
    return env | {"JAX_PLATFORMS": "cpu"} | extra


def _run(args, **kw):
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, **kw)


def test_dry_runs_print_exactly_what_would_run():
    out = _run(
        [
            sys.executable,
            "launch/local.py",
            "--num-processes",
            "2",
            "--cpu-devices",
            "4",
            "--port",
            "1234",
            "--dry-run",
            "--",
            "cwm",
            "train",
            "--config",
            "configs/tiny.py",
        ]
    ).stdout.splitlines()
    assert out == [
        f"CWM_COORDINATOR_ADDRESS=127.0.0.1:1234 CWM_NUM_PROCESSES=2 CWM_PROCESS_ID={i} CWM_CPU_DEVICES=4 "
        f"JAX_PLATFORMS=cpu cwm train --config configs/tiny.py"
        for i in range(2)
    ]
    tpu = _run(
        [
            sys.executable,
            "launch/tpu_pod.py",
            "--tpu",
            "pod",
            "--zone",
            "us-east5-a",
            "--dry-run",
            "--",
            "cwm",
            "train",
            "--config",
            "configs/x.py",
        ]
    ).stdout
    assert tpu.startswith("gcloud compute tpus tpu-vm ssh pod --zone=us-east5-a --worker=all")
    assert "CWM_DISTRIBUTED=auto .venv/bin/cwm train --config configs/x.py" in tpu
    slurm = _run(
        [
            sys.executable,
            "launch/slurm.py",
            "--nodes",
            "4",
            "--partition",
            "h100",
            "--dry-run",
            "--",
            "cwm",
            "train",
            "--config",
            "configs/x.py",
        ]
    ).stdout
    assert "#SBATCH --nodes=4\n" in slurm and "#SBATCH --partition=h100\n" in slurm
    assert "srun --kill-on-bad-exit=1 .venv/bin/cwm train --config configs/x.py" in slurm


def _final_loss(output: str) -> list[float]:
    return [float(line.rsplit("loss", 1)[1]) for line in output.splitlines() if "process " in line and ": step" in line]


@pytest.mark.slow
def test_two_processes_train_together_and_agree(tmp_path):
    common = [
        "--config.data.kind=synthetic",
        "--config.steps=3",
        "--config.model.n_kv_heads=2",
        "--config.mesh.data=2",
        "--config.mesh.tensor=2",
    ]
    two = _run(
        [
            sys.executable,
            "launch/local.py",
            "--num-processes",
            "2",
            "--cpu-devices",
            "2",
            "--",
            *TRAIN,
            "--workdir",
            str(tmp_path / "two"),
            *common,
        ],
        env=_env(),
    )
    assert two.returncode == 0, two.stdout[-2000:]
    losses = _final_loss(two.stdout)
    one = _run([*TRAIN, "--workdir", str(tmp_path / "one"), *common], env=_env(CWM_CPU_DEVICES="4"))
    assert len(losses) == 2 and losses[0] == losses[1]
    assert abs(losses[0] - _final_loss(one.stdout)[0]) < 1e-5


def _metrics(workdir: Path) -> list[dict]:
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _final_params(workdir: Path, step: int):
    return ocp.StandardCheckpointer().restore(workdir / "checkpoints" / str(step) / "state")["params"]


@pytest.mark.slow
def test_sigkill_then_restart_ends_bit_identical(tmp_path):
    args = ["--config.steps=16", "--config.checkpoint_every=4", "--config.log_every=100"]
    reference = _run([*TRAIN, "--workdir", str(tmp_path / "reference"), *args], env=_env())
    assert reference.returncode == 0, reference.stderr[-2000:]

    crashed = tmp_path / "crashed"
    proc = subprocess.Popen(
        [*TRAIN, "--workdir", str(crashed), *args],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while time.time() < deadline:
        logged = _metrics(crashed) if (crashed / "metrics.jsonl").exists() else []
        if logged and logged[-1]["step"] >= 6:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _metrics(crashed)[-1]["step"]
    assert 6 <= killed_at < 16
    resumed = _run([*TRAIN, "--workdir", str(crashed), *args], env=_env())
    assert resumed.returncode == 0 and "resumed from step" in resumed.stdout

    want, got = _metrics(tmp_path / "reference"), _metrics(crashed)
    assert [m["step"] for m in got] == list(range(1, 17))
    assert [(m["loss"], m["data_checksum"]) for m in got] == [(m["loss"], m["data_checksum"]) for m in want]
    final, expected = _final_params(crashed, 16), _final_params(tmp_path / "reference", 16)
    for a, b in zip(jax.tree.leaves(final), jax.tree.leaves(expected), strict=True):
        assert a.dtype == b.dtype and np.array_equal(np.asarray(a), np.asarray(b))


def test_sigterm_checkpoints_the_current_step_and_stops(tmp_path):
    args = [
        "--config.data.kind=synthetic",
        "--config.steps=500",
        "--config.checkpoint_every=1000",
        "--config.log_every=1000",
    ]
    proc = subprocess.Popen(
        [*TRAIN, "--workdir", str(tmp_path), *args],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and not ((tmp_path / "metrics.jsonl").exists() and _metrics(tmp_path)):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 143, out[-2000:]
    stopped = _metrics(tmp_path)[-1]["step"]
    assert f"SIGTERM: checkpointed step {stopped} and stopped" in out
    assert (tmp_path / "checkpoints" / str(stopped) / "state").is_dir() and stopped < 500


@pytest.mark.slow
def test_a_run_resumes_on_another_process_count_with_the_same_batches(tmp_path):
    """Shipped data in 2 virtual shards: two processes train 4 steps; dropping their last checkpoint, one
    process resumes at step 2 and trains steps 3-4 on the same rows (summed in another order)."""
    common = [
        "--config.data.virtual_shards=2",
        "--config.steps=4",
        "--config.checkpoint_every=2",
        "--config.log_every=100",
        f"--config.data.shipped_dir={tmp_path / 'data'}",
    ]
    two = tmp_path / "two"
    run = _run(
        [
            sys.executable,
            "launch/local.py",
            "--num-processes",
            "2",
            "--cpu-devices",
            "1",
            "--",
            *TRAIN,
            "--workdir",
            str(two),
            *common,
        ],
        env=_env(),
    )
    assert run.returncode == 0, run.stdout[-2000:]
    saved = sorted(p.name for p in (two / "checkpoints" / "2" / "data").glob("process_*"))
    assert saved == ["process_0-of-2.json", "process_1-of-2.json"]
    losses_two = {r["step"]: r["loss"] for r in _metrics(two)}
    subprocess.run(["rm", "-rf", str(two / "checkpoints" / "4")], check=True)
    resumed = _run([*TRAIN, "--workdir", str(two), *common], env=_env())
    assert resumed.returncode == 0 and "resumed from step 2" in resumed.stdout + resumed.stderr, resumed.stderr[-2000:]
    losses_one = {r["step"]: r["loss"] for r in _metrics(two)[-2:]}
    assert sorted(losses_one) == [3, 4]
    for step in (3, 4):
        assert abs(losses_one[step] - losses_two[step]) < 1e-5, (step, losses_one, losses_two)
    # Without virtual shards a process-count change is refused with the reason, not a stack trace.
    fixed = tmp_path / "fixed"
    run = _run(
        [
            sys.executable,
            "launch/local.py",
            "--num-processes",
            "2",
            "--cpu-devices",
            "1",
            "--",
            *TRAIN,
            "--workdir",
            str(fixed),
            *common[1:],
        ],
        env=_env(),
    )
    assert run.returncode == 0, run.stdout[-2000:]
    refused = _run([*TRAIN, "--workdir", str(fixed), *common[1:], "--config.steps=5"], env=_env())
    assert refused.returncode == 2 and "saved by 2 processes and this run has 1" in refused.stderr, refused.stderr[
        -2000:
    ]
