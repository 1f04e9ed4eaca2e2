"""The process that runs untrusted code under the tracer (started by trace_runner; not imported elsewhere).

Reads one JSON request on stdin, applies resource limits to itself (dropping root first), traces, and
writes one JSON result to the stdout it was started with. The traced program's own output is captured
separately, and a limit hit mid-run writes the partial result and exits at once.
"""

import json
import os
import resource
import sys

from cwm_data.trace_frames import ERROR, TraceLimits, TraceResult
from cwm_data.tracer import trace

PIDS_CGROUP = "/sys/fs/cgroup/pids"
PARTIAL_FRAMES = 2000  # an incomplete trace is kept for diagnosis only: send back its start, quickly


def _limit_self(limits: TraceLimits, cpu_seconds: float, group: str):
    memory = limits.memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = int(cpu_seconds) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_FSIZE, (2**24, 2**24))
    if os.getuid() != 0:
        resource.setrlimit(resource.RLIMIT_NPROC, (1, 1))  # already more processes than that: no forks
        return
    # RLIMIT_NPROC is not enforced for root. A pids cgroup holding only this process refuses forks and
    # threads; the runner removes it afterwards. (Dropping to nobody instead would also cut this process
    # off from a Python installed under /root.) Where no cgroup can be made, forks are possible, and the
    # runner's kill of the whole process session is what ends them.
    try:
        os.makedirs(group, exist_ok=True)
        with open(os.path.join(group, "pids.max"), "w") as f:
            f.write("1")
        with open(os.path.join(group, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    except OSError:
        pass


def worker_cgroup(name: str) -> str:
    return os.path.join(PIDS_CGROUP, f"cwm-trace-{name}")


def main():
    request = json.loads(sys.stdin.read())
    limits = TraceLimits.from_json(request["limits"])
    # Keep the real stdout for the result; the program's writes to fd 1 go nowhere.
    result_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)

    def send(result: dict):
        with os.fdopen(result_fd, "w") as out:
            json.dump(result, out)
        os._exit(0)

    def report(result: TraceResult):
        if not result.complete and len(result.frames) > PARTIAL_FRAMES:
            result.error = f"stopped after {len(result.frames)} frames; the first {PARTIAL_FRAMES} are kept"
            result.frames, result.linenos = result.frames[:PARTIAL_FRAMES], result.linenos[:PARTIAL_FRAMES]
        send(result.to_json())

    repo = request["mode"] == "repo"
    try:
        _limit_self(limits, request["suite_timeout_s"] if repo else limits.timeout_s, request["cgroup"])
    except OSError as e:
        if repo:
            send({"episodes": [], "dropped": {}, "exit_code": None, "error": f"could not apply limits: {e}"})
        report(TraceResult(ERROR, [], [], request["source"], error=f"could not apply limits: {e}"))
    if repo:
        from cwm_data.repo_tracer import trace_test_suite

        episodes, dropped, exit_code = trace_test_suite(
            request["repo_dir"], request["test_args"], limits, request["max_episodes_per_function"]
        )
        send({"episodes": [e.to_json() for e in episodes], "dropped": dropped, "exit_code": exit_code})
    report(trace(request["source"], request["entry"], request["call_args"], request["stdin"], limits, on_stop=report))


if __name__ == "__main__":
    main()
