"""Host processes with deadlines, the one mechanism for them: `run_bounded` runs a command with stdin, a
deadline and a cap on what it may print (a sandbox launcher, the tracer's worker); `LineWorker` keeps a helper
process that answers JSON lines, each by a deadline (Math-Verify comparisons)."""

import json
import os
import selectors
import signal
import subprocess
import threading
import time

from cwm_envs.sandbox import TIMEOUT_EXIT, ExecResult


def run_bounded(argv: list[str], stdin: bytes, timeout: float, max_output: int, **popen) -> ExecResult:
    """Kills the whole process group at the deadline, or once a stream passes max_output bytes."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, **popen
    )
    assert proc.stdout is not None and proc.stderr is not None  # both are PIPEs
    # A writer thread: a command that prints before reading must not deadlock against us.
    threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True).start()
    fds = {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr"}
    out = {"stdout": bytearray(), "stderr": bytearray()}
    selector = selectors.DefaultSelector()
    for fd in fds:
        selector.register(fd, selectors.EVENT_READ)
    deadline = start + timeout
    timed_out = truncated = False
    while selector.get_map() and not truncated:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            timed_out = True
            break
        for key, _ in selector.select(min(remaining, 0.5)):
            chunk = os.read(key.fd, 65536)
            if not chunk:
                selector.unregister(key.fd)
                continue
            buffer = out[fds[key.fd]]
            room = max_output - len(buffer)
            buffer += chunk[:room]
            truncated = truncated or len(chunk) > room
    selector.close()
    if timed_out or truncated:
        _kill_group(proc)
    try:
        code = proc.wait(timeout=max(0.05, deadline - time.perf_counter()))
    except subprocess.TimeoutExpired:  # closed its output but kept running
        timed_out = True
        _kill_group(proc)
        code = proc.wait()
    _kill_group(proc)  # anything it left behind in its session
    proc.stdout.close()
    proc.stderr.close()
    return ExecResult(
        TIMEOUT_EXIT if timed_out else code,
        bytes(out["stdout"]),
        bytes(out["stderr"]),
        time.perf_counter() - start,
        timed_out,
        truncated,
    )


def _feed(pipe, data: bytes):
    try:
        if data:
            pipe.write(data)
        pipe.close()
    except (BrokenPipeError, ValueError, OSError):
        pass


def _kill_group(proc: subprocess.Popen):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class LineWorker:
    """A long-lived helper process that answers each JSON request line with one JSON line; an answer not back
    by its deadline kills the process (the caller starts another)."""

    def __init__(self, argv: list[str], **popen):
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            **popen,
        )
        self._buffer = b""

    def ask(self, request: dict, deadline_s: float) -> dict | None:
        """The reply, or None if none came in time or the process died (it is then gone). A process that had
        died before the request came raises BrokenPipeError."""
        assert self.process.stdin is not None and self.process.stdout is not None  # both are PIPEs
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        self.process.stdin.flush()
        end = time.monotonic() + deadline_s
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = end - time.monotonic()
                if left <= 0 or not selector.select(left):
                    self.kill()
                    return None
                chunk = os.read(self.process.stdout.fileno(), 65536)
                if not chunk:
                    self.kill()
                    return None
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self):
        _kill_group(self.process)
        self.process.wait()
