"""`./dev setup` installs the jax build of the machine's accelerator (detection faked with stand-in
nvidia-smi / lspci programs), and the accelerator extras resolve against the package index."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
USAGE_WORKDIR = "--workdir /mnt/gcs/run"


def _program(directory: Path, name: str, output: str, code: int = 0) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{output}'\nexit {code}\n")
    path.chmod(0o755)


def _machine(tmp_path: Path, *, gpu: bool = False, tpu: bool = False) -> dict:
    """An environment whose PATH answers nvidia-smi and lspci as a GPU host, a TPU VM, or neither would."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    _program(fake, "nvidia-smi", "GPU 0: NVIDIA H200 (UUID: GPU-0)" if gpu else "no devices", 0 if gpu else 9)
    _program(fake, "lspci", "00:05.0 1200: 1ae0:0062" if tpu else "00:04.0 0200: 1af4:1000")
    env = {k: v for k, v in os.environ.items() if k != "CWM_ACCELERATOR"}
    return env | {"PATH": f"{fake}:{env['PATH']}", "CWM_VENV": str(tmp_path / "venv")}


def _no_real_accelerator():
    if list(Path("/dev").glob("accel*")) or Path("/proc/driver/nvidia/version").exists():
        pytest.skip("this machine has an accelerator of its own")


@pytest.mark.parametrize("machine, extras", [("gpu", "test,cuda"), ("tpu", "test,tpu"), ("cpu", "test")])
def test_dev_picks_the_accelerators_jax(tmp_path, machine, extras):
    _no_real_accelerator()
    env = _machine(tmp_path, gpu=machine == "gpu", tpu=machine == "tpu")
    said = subprocess.run(["./dev", "accelerator"], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert said.stdout.startswith(f"{machine.replace('gpu', 'cuda')} (") and said.stdout.strip().endswith(extras)


def test_dev_setup_installs_that_extra_and_takes_accelerator_to_force_one(tmp_path):
    """A stand-in venv python records what setup asks pip for (the system part of setup runs as usual)."""
    _no_real_accelerator()
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    log = tmp_path / "pip.log"
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    python.chmod(0o755)
    env = _machine(tmp_path, gpu=True)
    assert env["CWM_VENV"] == str(venv)

    def setup(*args):
        return subprocess.run(["./dev", "setup", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True)

    def pip_calls():
        return [line for line in log.read_text().splitlines() if " pip install " in f" {line}"]

    setup()
    assert pip_calls() == ["-m pip install -e .[test,cuda]"]
    setup("--accelerator", "tpu")
    assert pip_calls()[-1] == "-m pip install -e .[test,tpu]"
    # The other accelerator's plugins are removed first, so they cannot claim the backend.
    assert any(
        line.startswith("-m pip uninstall -y -q libtpu jax-cuda12-plugin") for line in log.read_text().splitlines()
    )
    # The named build is kept: unchanged pins and extra install nothing, also for a later plain setup or `accelerator`.
    setup("--accelerator=tpu")
    setup()
    assert len(pip_calls()) == 2
    said = subprocess.run(["./dev", "accelerator"], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert said.stdout.strip() == "tpu (named by --accelerator before) -> pip extras: test,tpu"
    # auto detects again: the NVIDIA host's build.
    setup("--accelerator", "auto")
    assert pip_calls()[-1] == "-m pip install -e .[test,cuda]"
    bad = subprocess.run(["./dev", "setup", "--accelerator", "rocm"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip() == "--accelerator is 'rocm'; allowed: tpu, cuda, cuda13, cpu"
    named = env | {"CWM_ACCELERATOR": "rocm"}
    said = subprocess.run(["./dev", "accelerator"], cwd=ROOT, env=named, capture_output=True, text=True)
    assert said.returncode == 2


@pytest.mark.slow
@pytest.mark.parametrize("extra", ["tpu", "cuda"])
def test_accelerator_extras_resolve(extra):
    report = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", f".[{extra}]"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert report.returncode == 0, report.stderr[-2000:]


def test_the_tpu_launchers_usage_example_names_a_workdir_cwm_train_accepts():
    from cwm_common.workdir import check_workdir

    doc = (ROOT / "launch" / "tpu_pod.py").read_text()
    assert USAGE_WORKDIR in doc
    check_workdir(USAGE_WORKDIR.split()[1])
