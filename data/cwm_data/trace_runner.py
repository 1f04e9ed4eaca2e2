"""Runs the tracer on untrusted code in a separate process with memory, CPU, file-size and process limits,
and a wall-clock deadline after which the process group is killed."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

from cwm_data.trace_frames import KILLED, TraceLimits, TraceResult

GRACE_S = 2.0  # beyond timeout_s, for start-up and writing the result


def run_trace(source: str, entry: str | None, call_args: str = "", stdin: str | None = None,
              limits: TraceLimits = TraceLimits()) -> TraceResult:
    """Like tracer.trace, but the code cannot harm this process: limits are enforced by the OS."""
    request = json.dumps(dict(source=source, entry=entry, call_args=call_args, stdin=stdin,
                              limits=dataclasses.asdict(limits)))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "cwm_data.trace_worker"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            cwd="/", env=_worker_env())
    try:
        out, err = proc.communicate(request.encode(), timeout=limits.timeout_s + GRACE_S)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return TraceResult(KILLED, [], [], source, error=f"no result within {limits.timeout_s + GRACE_S:.0f}s",
                           seconds=time.perf_counter() - start)
    finally:
        _kill_group(proc)  # whatever the code started goes too
    if proc.returncode != 0 or not out:
        reason = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
        return TraceResult(KILLED, [], [], source, error=f"worker died ({reason}) {tail[0]}".strip(),
                           seconds=time.perf_counter() - start)
    return TraceResult.from_json(json.loads(out))


def _worker_env() -> dict[str, str]:
    # The worker must import cwm_data from wherever this process did, whatever the working directory.
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": here, "PYTHONHASHSEED": "0"}


def _kill_group(proc: subprocess.Popen):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
