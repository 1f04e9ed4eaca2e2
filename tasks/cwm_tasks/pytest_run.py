"""Runs pytest_runner.py in a sandbox and reads its one report line (the channel the tested code cannot
write): the grader's and the environment builder's one way to learn which tests passed."""

import dataclasses
import importlib.metadata
import json
import secrets
import shlex
from pathlib import Path

from cwm_envs.project_recipe import requirement_name
from cwm_envs.sandbox import BACKENDS, ExecResult, Sandbox
from cwm_tasks import pytest_runner

RUNNER_SOURCE = Path(pytest_runner.__file__).read_text()
RUNNER_FILE = "pytest_runner.py"


@dataclasses.dataclass
class RunnerReport:
    outcomes: dict[str, str]  # test id -> pytest's outcome ("passed", "failed", "skipped", "error", ...)
    tampered: list
    finished: bool


def runner_command(repo_dir: str, test_files, python: str = "python3") -> str:
    """The shell command that runs the runner (put in the sandbox by put_runner) over test_files."""
    return " ".join(shlex.quote(a) for a in [python, "-I", "-S", RUNNER_FILE, repo_dir, *test_files])


def put_runner(sandbox: Sandbox) -> None:
    sandbox.put_file(RUNNER_FILE, RUNNER_SOURCE)


def run_runner(sandbox: Sandbox, command: str, timeout: float) -> tuple[RunnerReport | None, ExecResult]:
    """Runs `command` (ending in runner_command's) with the runner's deadline and nonce on stdin; the report,
    or None when the runner wrote none (it timed out, or was killed or shadowed)."""
    nonce = secrets.token_hex(16)
    # Only a sandbox backend gives its user nothing else to run: there the runner may end all its processes.
    own_user = getattr(sandbox, "backend", "") in BACKENDS
    run = sandbox.exec(
        command,
        stdin=json.dumps({"timeout_s": max(1.0, timeout - 5.0), "nonce": nonce, "own_user": own_user}),
        timeout=timeout,
    )
    lines = [line for line in run.stdout.decode(errors="replace").splitlines() if line.startswith(nonce + " ")]
    try:  # the runner writes exactly one line
        [line] = lines
        report = json.loads(line[len(nonce) + 1 :])
        if not (
            isinstance(report.get("outcomes"), dict)
            and isinstance(report.get("tampered"), list)
            and isinstance(report.get("finished"), bool)
        ):
            raise ValueError("not the runner's report")
    except (ValueError, AttributeError):
        return None, run
    return RunnerReport(report["outcomes"], report["tampered"], report["finished"]), run


def runner_dependencies() -> set[str]:
    """The projects the runner may import before any test (pytest and what it requires, as installed here,
    whatever the platform markers say, extras' requirements aside): a project among them cannot be graded,
    since the trusted runner would run its code."""
    found, todo = set(), ["pytest"]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo += [requirement_name(line) for line in requires if "extra" not in line.partition(";")[2]]
    return found
