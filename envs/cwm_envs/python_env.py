"""A repository's own Python environment, built without running anything of it on the host.

Wheels are downloaded on the host, binary only (pip then runs no package code); the virtual environment is
made, and the wheels installed, inside a sandbox with no network, into a host folder mounted there at
ENV_MOUNT. Sandboxes that run the repository's code mount the same folder read-only at the same place, so the
environment's paths hold. A folder already built for the same interpreter and requirements is reused.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence

from cwm_common.errors import CwmError
from cwm_envs.host_python import sandbox_python
from cwm_envs.sandbox import Mount, SandboxLimits, SandboxView
from cwm_envs.sandbox_factory import make_sandbox

ENV_MOUNT = "/opt/cwm/env"
WHEELS_MOUNT = "/opt/cwm/wheels"
STAMP = "cwm-env.json"
BUILD_TIMEOUT_S = 600.0


def env_python() -> str:
    """The environment's interpreter, as a sandbox that mounts it sees it."""
    return f"{ENV_MOUNT}/bin/python"


def read_requirements(path: str) -> list[str]:
    """The requirement lines of a pip requirements file (comments and blank lines dropped)."""
    try:
        with open(path) as f:
            lines = [line.split("#", 1)[0].strip() for line in f]
    except OSError as e:
        raise CwmError(f"{path}: cannot read requirements ({e.strerror})") from None
    options = [line for line in lines if line.startswith("-")]
    if options:
        raise CwmError(f"{path}: pip options are not supported in requirements ({options[0]})")
    return [line for line in lines if line]


def build_python_env(
    requirements: Sequence[str], env_dir: str, backend: str = "bwrap", log: Callable[[str], None] = print
) -> str:
    """env_dir, holding a virtual environment with the requirements installed; reused when already built."""
    env_dir = os.path.abspath(env_dir)
    wanted = {"python": sys.version, "requirements": sorted(requirements)}
    stamp = os.path.join(env_dir, STAMP)
    if os.path.exists(stamp):
        with open(stamp) as f:
            if json.load(f) == wanted:
                return env_dir
    key = hashlib.sha256(json.dumps(wanted).encode()).hexdigest()[:12]
    log(f"building a Python environment in {env_dir} ({key}): {' '.join(requirements)}")
    shutil.rmtree(env_dir, ignore_errors=True)
    os.makedirs(env_dir)
    wheels = env_dir + ".wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    try:
        download_wheels(requirements, wheels)
        python = sandbox_python()
        view = python.view.plus(SandboxView((Mount(wheels, WHEELS_MOUNT), Mount(env_dir, ENV_MOUNT, writable=True))))
        # pip unpacks wheels in /tmp, which counts against the disk quota: room for large wheels
        limits = SandboxLimits(memory_mb=2048, timeout_s=BUILD_TIMEOUT_S, disk_mb=8192)
        sandbox = make_sandbox(backend, limits, view=view)
        try:
            for step in (
                [python.executable, "-s", "-m", "venv", ENV_MOUNT],
                [
                    env_python(),
                    "-s",
                    "-m",
                    "pip",
                    "install",
                    "--no-index",
                    "--no-cache-dir",
                    "--find-links",
                    WHEELS_MOUNT,
                    "--disable-pip-version-check",
                    *requirements,
                ],
            ):
                result = sandbox.exec(step)
                if not result.ok:
                    last = (result.text().strip().splitlines() or ["no output"])[-1]
                    raise CwmError(f"building the environment in {env_dir}: `{' '.join(step[:4])}` failed: {last}")
        finally:
            sandbox.close()
    finally:
        shutil.rmtree(wheels, ignore_errors=True)
    hand_to_root(env_dir)
    with open(stamp, "w") as f:
        json.dump(wanted, f)
    return env_dir


def hand_to_root(env_dir: str) -> None:
    """An environment built as the sandbox's user, from now on only read by sandboxes: owned by root when we
    are root."""
    if os.getuid() == 0:
        for root, dirs, files in os.walk(env_dir):
            for name in (root, *(os.path.join(root, n) for n in dirs + files)):
                os.lchown(name, 0, 0)


def download_wheels(requirements: Sequence[str], dest: str):
    """Binary wheels only, run from an empty folder: no requirement can name a local project pip would build."""
    dest = os.path.abspath(dest)
    with tempfile.TemporaryDirectory() as empty:
        _download(requirements, dest, empty)


def _download(requirements: Sequence[str], dest: str, cwd: str):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--dest",
            dest,
            *requirements,
        ],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        cwd=cwd,
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise CwmError(f"pip could not download wheels for {' '.join(requirements)}: {last}")
