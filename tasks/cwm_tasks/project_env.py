"""`cwm env build`: an executable environment for a real Python project, and the tests that pass in it.

The source (a folder, or an sdist from PyPI: project_source.py) is read for how it installs and tests
(project_recipe.py). Wheels for its build system, dependencies, test dependencies and pytest are downloaded
on the host, binary only; in a sandbox with no network a virtual environment is made with them and the
project installed in it, editable from /work/repo, where task repositories sit. The suite then runs in a
fresh sandbox that mounts the environment read-only, through the graders' pytest runner, and the ids of the
tests that passed are recorded. `out` then holds `repo/` (the source, with what installing generated),
`env/` (the environment) and `env.json`; a project that cannot be built gets `report.json` naming the step
that failed and why, and nothing is run on the host.
"""

import importlib.metadata
import io
import json
import os
import shutil
import sys
import tarfile
import time
from collections.abc import Callable

from cwm_common.errors import CwmError
from cwm_envs.host_python import sandbox_python
from cwm_envs.project_recipe import read_recipe, requirement_name
from cwm_envs.project_source import fetch_source
from cwm_envs.python_env import ENV_MOUNT, WHEELS_MOUNT, download_wheels, env_python, hand_to_root
from cwm_envs.sandbox import Mount, Sandbox, SandboxLimits, SandboxView
from cwm_envs.sandbox_factory import make_sandbox
from cwm_tasks.pytest_run import put_runner, run_runner, runner_command, runner_dependencies

ENV_FILE = "env.json"
REPORT_FILE = "report.json"
REPO_DIR = "repo"  # as in task folders, and where the project sits in a sandbox (/work/repo)
ENV_DIR = "env"
BUILD_LIMITS = SandboxLimits(memory_mb=2048, pids=128, timeout_s=900.0, disk_mb=4096)


class BuildFailed(CwmError):
    """A build step that failed, and why."""

    def __init__(self, step: str, why: str):
        super().__init__(f"{step} failed: {why}")
        self.step, self.why = step, why


def build_project_env(
    source: str, out: str, backend: str = "bwrap", log: Callable[[str], None] = print, suite_timeout: float = 900.0
) -> dict:
    """Builds the environment of `source` into `out`; returns env.json's contents. When a step fails, writes
    report.json and raises a CwmError naming the source, the step and why."""
    os.makedirs(out, exist_ok=True)
    for stale in (ENV_FILE, REPORT_FILE):
        if os.path.exists(os.path.join(out, stale)):
            os.remove(os.path.join(out, stale))
    seconds: dict[str, float] = {}
    step = "fetch the source"
    try:
        started = time.perf_counter()
        repo = os.path.join(out, REPO_DIR)
        provenance = fetch_source(source, repo)
        step = "read how it installs and tests"
        recipe = read_recipe(repo)
        log(f"{source}: " + "; ".join(recipe.found or ["no install or test configuration found: defaults"]))
        if recipe.name in runner_dependencies():
            raise CwmError(
                f"{recipe.name} is one of pytest's own dependencies: the graders' runner would import the "
                "project's code before its tests, so it cannot be graded"
            )
        if not recipe.test_paths and not _has_tests(repo):
            raise CwmError("the project has no tests to run (no test files, and no test paths configured)")
        seconds["read"] = time.perf_counter() - started
        step = "install"
        started = time.perf_counter()
        env_dir = os.path.join(out, ENV_DIR)
        installs = _install(repo, env_dir, recipe, backend)
        seconds["install"] = time.perf_counter() - started
        step = "run the tests"
        started = time.perf_counter()
        outcomes = run_suite(repo, env_dir, recipe.test_paths, backend, suite_timeout)
        seconds["tests"] = time.perf_counter() - started
    except CwmError as e:
        if isinstance(e, BuildFailed):
            raise _failed(out, source, e.step, e.why) from None
        raise _failed(out, source, step, str(e)) from None
    passing = sorted(t for t, outcome in outcomes.items() if outcome == "passed")
    if not passing:
        raise _failed(out, source, "run the tests", f"no test passed ({len(outcomes)} ran)")
    env = {
        "source": provenance,
        "backend": backend,
        "python": sys.version.split()[0],
        "recipe": recipe.as_json(),
        "installed": installs,
        "env_dir": ENV_DIR,
        "env_mount": ENV_MOUNT,
        "test_command": runner_command(REPO_DIR, recipe.test_paths, env_python()),
        "test_paths": recipe.test_paths,
        "passing": passing,
        "not_passing": {t: o for t, o in sorted(outcomes.items()) if o != "passed"},
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }
    with open(os.path.join(out, ENV_FILE), "w") as f:
        json.dump(env, f, indent=1)
    log(f"{source}: {len(passing)} of {len(outcomes)} tests pass; {os.path.join(out, ENV_FILE)}")
    return env


def _failed(out: str, source: str, step: str, why: str) -> CwmError:
    """Writes report.json; the one-line error naming the source, the step and why."""
    with open(os.path.join(out, REPORT_FILE), "w") as f:
        json.dump({"source": source, "ok": False, "step": step, "why": why}, f, indent=1)
    return CwmError(f"{source}: {step} failed: {why}")


def is_test_file(name: str) -> bool:
    """A file pytest collects by its default name patterns."""
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


def suite_limits(timeout: float) -> SandboxLimits:
    """A sandbox that runs a project's suite (or grades a patch with it)."""
    return SandboxLimits(memory_mb=2048, pids=128, timeout_s=timeout, disk_mb=2048)


def _has_tests(repo: str) -> bool:
    return any(is_test_file(name) for _, _, files in os.walk(repo) for name in files)


def _requirements(recipe) -> list[str]:
    wanted = [*recipe.build_requires, *recipe.requires, *recipe.test_requires]
    if not any(requirement_name(r) == "pytest" for r in wanted):  # the runner drives pytest
        wanted.append(f"pytest=={importlib.metadata.version('pytest')}")
    return list(dict.fromkeys(wanted))


def _install(repo: str, env_dir: str, recipe, backend: str) -> list[str]:
    """The environment in env_dir, the project installed in it editable from /work/repo; returns the
    requirements installed. The repo folder gets back what installing generated (version files)."""
    requirements = _requirements(recipe)
    shutil.rmtree(env_dir, ignore_errors=True)
    os.makedirs(env_dir)
    wheels = env_dir + ".wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    try:
        try:
            download_wheels(requirements, wheels)
        except CwmError as e:
            raise BuildFailed("download wheels", str(e)) from None
        python = sandbox_python()
        view = python.view.plus(SandboxView((Mount(wheels, WHEELS_MOUNT), Mount(env_dir, ENV_MOUNT, writable=True))))
        sandbox = make_sandbox(backend, BUILD_LIMITS, view=view)
        try:
            put_tree(sandbox, repo, REPO_DIR)
            pip = [env_python(), "-s", "-m", "pip", "install", "--no-index", "--find-links", WHEELS_MOUNT]
            pip += ["--no-cache-dir", "--disable-pip-version-check"]
            for name, command in (
                ("make the virtual environment", [python.executable, "-s", "-m", "venv", ENV_MOUNT]),
                ("install the dependencies", [*pip, *requirements]),
                ("install the project", [*pip, "--no-build-isolation", "--no-deps", "-e", f"./{REPO_DIR}"]),
            ):
                result = sandbox.exec(command)
                if not result.ok:
                    lines = [line for line in result.text().strip().splitlines() if line.strip()]
                    raise BuildFailed(name, lines[-1] if lines else f"exit code {result.exit_code}")
            _take_back_tree(sandbox, repo)
        finally:
            sandbox.close()
    finally:
        shutil.rmtree(wheels, ignore_errors=True)
    hand_to_root(env_dir)
    return requirements


def put_tree(sandbox: Sandbox, folder: str, target: str) -> None:
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                sandbox.put_file(f"{target}/{os.path.relpath(path, folder)}", f.read())


def _take_back_tree(sandbox: Sandbox, repo: str) -> None:
    """Regular files the install wrote into /work/repo (a version file, say), copied back as data; caches
    and package metadata stay behind."""
    made = sandbox.exec(
        f"tar -C {REPO_DIR} --exclude=__pycache__ --exclude='*.egg-info' --exclude=build -cf repo.tar .",
        timeout=120,
    )
    if not made.ok:
        raise BuildFailed("install the project", f"could not read the repository back: {made.text()[-200:]}")
    with tarfile.open(fileobj=io.BytesIO(sandbox.get_file("repo.tar"))) as archive:
        for member in archive.getmembers():
            parts = [p for p in member.name.split("/") if p not in ("", ".")]
            if not member.isfile() or ".." in parts or not parts:
                continue
            target = os.path.join(repo, *parts)
            if not os.path.exists(target):
                data = archive.extractfile(member)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "wb") as f:
                    f.write(data.read() if data else b"")


def env_view(env_dir: str) -> SandboxView:
    """What a sandbox shows to run code in the environment: the interpreter, the environment read-only, and
    the environment first on PATH (an agent's `python` and `pytest` are the environment's)."""
    path = (("PATH", f"{ENV_MOUNT}/bin:/usr/local/bin:/usr/bin:/bin"), ("VIRTUAL_ENV", ENV_MOUNT))
    return sandbox_python().view.plus(SandboxView((Mount(os.path.abspath(env_dir), ENV_MOUNT),), path))


def run_suite(repo: str, env_dir: str, test_paths, backend: str, timeout: float) -> dict[str, str]:
    """Each test's outcome: the repository's suite (test_paths, or pytest's discovery from the root) run in a
    fresh sandbox with the environment read-only, through the graders' runner."""
    sandbox = make_sandbox(backend, suite_limits(timeout), view=env_view(env_dir))
    try:
        put_tree(sandbox, repo, REPO_DIR)
        put_runner(sandbox)
        report, run = run_runner(sandbox, runner_command(REPO_DIR, test_paths, env_python()), timeout)
    finally:
        sandbox.close()
    if report is None:
        raise BuildFailed(
            "run the tests", "timed out" if run.timed_out else f"the runner wrote no report: {run.text()[-300:]}"
        )
    if report.tampered:
        raise BuildFailed("run the tests", f"the suite tampered with the test run: {report.tampered}")
    if not report.finished:
        raise BuildFailed("run the tests", "the suite did not reach its end")
    return report.outcomes
