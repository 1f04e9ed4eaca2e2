"""Runs the tracer on untrusted code in a separate process with memory, CPU, file-size and process limits,
and a wall-clock deadline after which the process group is killed."""

import dataclasses
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence

from cwm_data.trace_frames import KILLED, TraceLimits, TraceResult
from cwm_data.trace_worker import worker_cgroup
from cwm_envs.bounded_process import run_bounded

GRACE_S = 2.0  # beyond the run's own time limit, for start-up and writing the result
MAX_RESULT_BYTES = 1 << 30


def _run_worker(request: dict, timeout_s: float) -> tuple[dict | None, str]:
    """(the worker's JSON result, "") or (None, why there is none). The whole process session is killed at
    the deadline or when the worker ends, so whatever the code started goes too."""
    group = worker_cgroup(uuid.uuid4().hex)
    try:
        result = run_bounded(
            [sys.executable, "-m", "cwm_data.trace_worker"],
            json.dumps({**request, "cgroup": group}).encode(),
            timeout_s,
            MAX_RESULT_BYTES,
            cwd="/",
            env=_worker_env(),
        )
    finally:
        _remove_cgroup(group)
    if result.timed_out:
        return None, f"no result within {timeout_s:.0f}s"
    if result.exit_code != 0 or not result.stdout:
        code = result.exit_code
        reason = f"signal {-code}" if code < 0 else f"exit code {code}"
        tail = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        return None, f"worker died ({reason}) {tail[0]}".strip()
    return json.loads(result.stdout), ""


def run_trace(
    source: str, entry: str | None, call_args: str = "", stdin: str | None = None, limits: TraceLimits = TraceLimits()
) -> TraceResult:
    """Like tracer.trace, but the code cannot harm this process: limits are enforced by the OS."""
    start = time.perf_counter()
    request = dict(
        mode="call", source=source, entry=entry, call_args=call_args, stdin=stdin, limits=dataclasses.asdict(limits)
    )
    result, why = _run_worker(request, limits.timeout_s + GRACE_S)
    if result is None:
        return TraceResult(KILLED, [], [], source, error=why, seconds=time.perf_counter() - start)
    return TraceResult.from_json(result)


@dataclasses.dataclass
class RepoTraceResult:
    episodes: list[TraceResult]
    dropped: dict[str, int]  # episodes dropped, by reason
    pytest_exit_code: int | None
    error: str = ""


def run_repo_trace(
    repo_dir: str,
    test_args: Sequence[str] = (),
    limits: TraceLimits = TraceLimits(),
    suite_timeout_s: float = 600.0,
    max_episodes_per_function: int = 5,
) -> RepoTraceResult:
    """Runs the repo's pytest suite in a limited process and returns its function-level episodes."""
    request = dict(
        mode="repo",
        repo_dir=os.path.abspath(repo_dir),
        test_args=list(test_args),
        limits=dataclasses.asdict(limits),
        suite_timeout_s=suite_timeout_s,
        max_episodes_per_function=max_episodes_per_function,
    )
    result, why = _run_worker(request, suite_timeout_s + GRACE_S)
    if result is None:
        return RepoTraceResult([], {}, None, error=why)
    return RepoTraceResult(
        [TraceResult.from_json(e) for e in result["episodes"]],
        result["dropped"],
        result["exit_code"],
        result.get("error", ""),
    )


def _worker_env() -> dict[str, str]:
    # The worker must import cwm_data (and pytest) from wherever this process does, from any directory.
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([here, *sys.path[1:]]),
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _remove_cgroup(group: str):
    if os.path.isdir(group):
        try:
            os.rmdir(group)  # empty now: its only process is gone
        except OSError:
            pass  # still busy for a moment: an empty cgroup left behind is harmless
