"""The trace server: runs inside a cwm_envs sandbox (started by sandboxed_tracer, never imported on the host).

The interpreter and the tracer are loaded once; each request (one JSON line on stdin) is traced in a forked
child that first cuts itself off from the server (no inherited descriptors, stdio on /dev/null), then takes
its own limits: address space, CPU seconds, file size, and no new processes or threads. The server reads the
child's result from a private pipe until the child's deadline, kills the child whatever happened, and answers
with one JSON line: {"id", "result"} or {"id", "failed": why}. A child that crashes, hangs or runs out of
memory becomes a failure with its status, and the server goes on to the next request.

Only the standard library and the tracer's own modules are imported here: nothing else of the project is
visible inside the sandbox.
"""

import gc
import json
import os
import resource
import select
import signal
import sys
import time

from cwm_data.trace_frames import ERROR, TraceLimits, TraceResult
from cwm_data.tracer import trace

GRACE_S = 2.0  # beyond the run's own time limit, for writing the result
MAX_RESULT_BYTES = 256 << 20
PARTIAL_FRAMES = 2000  # an incomplete trace is kept for diagnosis only: send back its start, quickly
FILE_SIZE_BYTES = 1 << 24
_PR_SET_DUMPABLE = 4
# Traced once in the server before any child is forked, so every child starts with the tracer's code paths
# already run (lazy imports, interned names, grown allocator pools): this project's own code, not a request's.
_WARM_UP = """
def warm_up(n):
    table = {str(k): [k] * (k % 3) for k in range(n)}
    words = sorted(table, key=len)
    try:
        total = sum(len(v) for v in table.values()) // (n - n)
    except ZeroDivisionError as e:
        total = repr(e)
    return words[:2], total, tuple(x for x in range(3)), {1, 2}
"""


def _not_dumpable():
    """Makes /proc/<server>/fd unreadable to the children (same uid), so a child cannot open the server's
    pipes and write answers of its own; children inherit the flag."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


def _limit_child(limits: TraceLimits, cpu_seconds: float):
    memory = limits.memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = int(cpu_seconds) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_BYTES, FILE_SIZE_BYTES))
    # The server already counts against this uid: no fork, no thread, no setsid survivor.
    resource.setrlimit(resource.RLIMIT_NPROC, (1, 1))


def _isolate_child(result_fd: int):
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(3, result_fd)
    os.closerange(result_fd + 1, os.sysconf("SC_OPEN_MAX"))


def _child(request: dict, result_fd: int):
    """Never returns: traces, writes the result (one line) to result_fd, and exits."""

    def send(result: dict):
        data = (json.dumps(result) + "\n").encode()
        view = memoryview(data)
        while view:
            view = view[os.write(result_fd, view) :]
        os._exit(0)

    def report(result: TraceResult):
        if not result.complete and len(result.frames) > PARTIAL_FRAMES:
            result.error = f"stopped after {len(result.frames)} frames; the first {PARTIAL_FRAMES} are kept"
            result.frames, result.linenos = result.frames[:PARTIAL_FRAMES], result.linenos[:PARTIAL_FRAMES]
        send(result.to_wire())

    try:
        _isolate_child(result_fd)
        limits = TraceLimits.from_json(request["limits"])
        repo = request["mode"] == "repo"
        try:
            _limit_child(limits, request["suite_timeout_s"] if repo else limits.timeout_s)
        except (OSError, ValueError) as e:
            if repo:
                send({"episodes": [], "dropped": {}, "exit_code": None, "error": f"could not apply limits: {e}"})
            report(TraceResult(ERROR, [], [], request["source"], error=f"could not apply limits: {e}"))
        if repo:
            from cwm_data.repo_tracer import trace_test_suite

            episodes, dropped, exit_code = trace_test_suite(
                request["repo_dir"], request["test_args"], limits, request["max_episodes_per_function"]
            )
            send({"episodes": [e.to_wire() for e in episodes], "dropped": dropped, "exit_code": exit_code})
        report(
            trace(request["source"], request["entry"], request["call_args"], request["stdin"], limits, on_stop=report)
        )
    finally:
        os._exit(70)  # anything that escaped the above: no result


def _death(status: int) -> str:
    if not os.WIFSIGNALED(status):
        return f"exit code {os.WEXITSTATUS(status)}"
    number = os.WTERMSIG(status)
    try:
        return f"signal {number} ({signal.Signals(number).name})"
    except ValueError:
        return f"signal {number}"


def _collect(result_fd: int, timeout_s: float) -> tuple[bytes | None, str]:
    """(the child's result line, "") or (None, why there is none; "" when the child ended without one).
    The line's end is the result's end (JSON has no raw newline): no need to wait for the child to exit."""
    chunks, size = [], 0
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None, f"no result within {timeout_s:.0f}s"
            if not select.select([result_fd], [], [], left)[0]:
                continue
            chunk = os.read(result_fd, 1 << 20)
            if not chunk:
                return None, ""
            end = chunk.find(b"\n")
            chunks.append(chunk if end < 0 else chunk[: end + 1])  # one line: the answer stays one line
            size += len(chunk)
            if end >= 0:
                return b"".join(chunks), ""
            if size > MAX_RESULT_BYTES:
                return None, f"result larger than {MAX_RESULT_BYTES >> 20} MiB"
    finally:
        os.close(result_fd)


def _end(pid: int) -> int:
    """Kills the child (whatever it is doing) and reaps it; its wait status."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return os.waitpid(pid, 0)[1]


def _handle(request: dict, out) -> None:
    """Traces one request in a child and writes the answer line; a child with a result is reaped after the
    answer is out, so its exit overlaps the host's reading."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(request, write_fd)
    os.close(write_fd)
    limits = request["limits"]
    timeout = request["suite_timeout_s"] if request["mode"] == "repo" else limits["timeout_s"]
    data, why = _collect(read_fd, timeout + GRACE_S)
    head = json.dumps({"id": request["id"]})[:-1].encode()
    if data is None:
        status = _end(pid)
        why = why or f"the traced process died ({_death(status)})"
        out.write(head + b', "failed": ' + json.dumps(why).encode() + b"}\n")
        out.flush()
        return
    out.write(head + b', "result": ' + data.rstrip(b"\n") + b"}\n")
    out.flush()
    _end(pid)


def main():
    if sys.flags.no_site:  # the builtins `site` adds, which traced code may use (exit, quit, help...)
        import site

        site.setquit()
        site.setcopyright()
        site.sethelper()
    out = os.fdopen(os.dup(1), "wb")
    if os.getuid() == 0:
        out.write(b'{"refused": "the trace server does not run as root"}\n')
        out.flush()
        return
    _not_dumpable()
    trace(_WARM_UP, "warm_up", "20")
    gc.freeze()  # the server's objects stay out of the children's collections: fewer copy-on-write pages
    out.write((json.dumps({"ready": os.getpid(), "python": sys.version.split()[0]}) + "\n").encode())
    out.flush()
    # Started: from now on the stream carries answers only (a warning on stderr would break a line).
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    for line in sys.stdin.buffer:
        _handle(json.loads(line), out)


if __name__ == "__main__":
    main()
