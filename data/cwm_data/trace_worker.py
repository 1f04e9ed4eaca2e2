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

NOBODY = 65534
PARTIAL_FRAMES = 2000  # an incomplete trace is kept for diagnosis only: send back its start, quickly


def _limit_self(limits: TraceLimits):
    memory = limits.memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = int(limits.timeout_s) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_FSIZE, (2**24, 2**24))
    if os.getuid() == 0:
        # RLIMIT_NPROC is not enforced for root: become nobody so that forks are refused.
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    resource.setrlimit(resource.RLIMIT_NPROC, (1, 1))


def main():
    request = json.loads(sys.stdin.read())
    limits = TraceLimits.from_json(request["limits"])
    # Keep the real stdout for the result; the program's writes to fd 1 go nowhere.
    result_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)

    def report(result: TraceResult):
        if not result.complete and len(result.frames) > PARTIAL_FRAMES:
            result.error = f"stopped after {len(result.frames)} frames; the first {PARTIAL_FRAMES} are kept"
            result.frames, result.linenos = result.frames[:PARTIAL_FRAMES], result.linenos[:PARTIAL_FRAMES]
        with os.fdopen(result_fd, "w") as out:
            json.dump(result.to_json(), out)
        os._exit(0)

    try:
        _limit_self(limits)
    except OSError as e:
        report(TraceResult(ERROR, [], [], request["source"], error=f"could not apply limits: {e}"))
    report(trace(request["source"], request["entry"], request["call_args"], request["stdin"], limits,
                 on_stop=report))


if __name__ == "__main__":
    main()
