"""Test setup: 8 simulated CPU devices and a persistent compilation cache, both before jax starts; tests
marked for machinery this machine lacks (bwrap, docker, gpu, tpu) are skipped with the reason."""

import os
import shutil

import pytest

_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
    os.environ["XLA_FLAGS"] = f"{_flags} --xla_force_host_platform_device_count=8".strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)), ".cache", "jax")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

# tests/data holds test inputs, among them a repository with a pytest suite of its own (run only in a sandbox).
collect_ignore = ["data"]


def pytest_configure(config):
    import jax  # only now: jax reads the environment above when it is first imported

    assert len(jax.devices("cpu")) == 8, "XLA_FLAGS was read before conftest could set 8 host devices"


def _missing(marker: str) -> str | None:
    """Why this machine cannot run tests with `marker`, or None if it can."""
    if marker == "bwrap":
        return None if shutil.which("bwrap") else "bubblewrap is not installed (./dev test installs it as root)"
    if marker == "docker":
        from cwm_envs.docker_sandbox import docker_available

        return docker_available()
    import jax

    backend = jax.default_backend()
    return None if backend == marker else f"needs a {marker.upper()}; jax's backend here is {backend}"


def pytest_collection_modifyitems(config, items):
    reasons: dict[str, str | None] = {}
    for item in items:
        for marker in ("bwrap", "docker", "gpu", "tpu"):
            if item.get_closest_marker(marker):
                if marker not in reasons:
                    reasons[marker] = _missing(marker)
                reason = reasons[marker]
                if reason:
                    item.add_marker(pytest.mark.skip(reason=reason))


def _repo_env(repo_dir: str, name: str) -> str:
    """The Python environment a repository's suite needs (PyPI wheels installed in a bwrap sandbox), kept in
    .cache between runs: rebuilt only when the interpreter or the requirements change."""
    from cwm_common.repo_paths import REPO
    from cwm_data.generators.repo_traces import repo_test_requirements
    from cwm_envs.python_env import build_python_env

    requirements = repo_test_requirements(repo_dir)
    return build_python_env(requirements, os.path.join(REPO, ".cache", "python-envs", name), log=lambda m: None)


@pytest.fixture(scope="session")
def textkit_env() -> str:
    from cwm_common.repo_paths import CORPUS

    return _repo_env(os.path.join(CORPUS, "repos", "textkit"), "textkit")  # pytest only


BATCHKIT = os.path.join(os.path.dirname(__file__), "data", "repos", "batchkit")


@pytest.fixture(scope="session")
def batchkit_env() -> str:
    return _repo_env(BATCHKIT, "batchkit")  # pytest and more-itertools


@pytest.fixture(scope="session")
def inflection_env(tmp_path_factory):
    """inflection's sdist from PyPI (setup.py only, setuptools by default, its tests beside the package), made
    an environment by `cwm env build`."""
    from cwm_cli.main import main

    out = tmp_path_factory.mktemp("envs") / "inflection"
    assert main(["env", "build", "pypi:inflection==0.5.1", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def inflection_tasks(inflection_env, tmp_path_factory):
    """Two mutate-fix tasks over inflection's environment: (their folder, the command that made them)."""
    from cwm_cli.main import main

    tasks = tmp_path_factory.mktemp("tasks") / "inflection"
    command = ["gen-tasks", "mutate-fix", "--env", str(inflection_env), "--out", str(tasks), "--limit", "2"]
    assert main(command) == 0
    return tasks, command
