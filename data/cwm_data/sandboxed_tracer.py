"""Tracing code nobody has read: the tracer runs in a trace server (trace_server.py) inside a cwm_envs
sandbox, bwrap by default or Docker. The sandbox shows the host's Python build and the tracer's own package,
read-only, a repository's environment when one is given, and its own /work; no network, an unprivileged uid,
the sandbox's memory and process limits, and per-trace limits in the server's forked children.

A server that dies (the traced code killed it) or stops answering is replaced, sandbox and all, and the trace
that was running is reported as KILLED with the reason; the next trace runs in the new one.
"""

import atexit
import contextlib
import dataclasses
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from cwm_common.errors import CwmError
from cwm_data.trace_frames import KILLED, TraceLimits, TraceResult
from cwm_envs.host_python import sandbox_python
from cwm_envs.python_env import ENV_MOUNT, env_python
from cwm_envs.sandbox import Mount, SandboxLimits, SandboxView
from cwm_envs.sandbox_factory import make_sandbox
from cwm_envs.sandbox_files import regular_files

TRACER_MOUNT = "/opt/cwm/lib"  # holds cwm_data, read-only
REPO_DIR = "/work/repo"
START_TIMEOUT_S = 60.0
HOST_GRACE_S = 10.0  # beyond the server's own deadline for a trace: then the server is taken as hung
_BOOT = f"import sys; sys.path[0] = {TRACER_MOUNT!r}; from cwm_data.trace_server import main; main()"
CORRUPTED = "the traced code corrupted its result"
_SERVER_LIMITS = SandboxLimits(memory_mb=4096, pids=16)  # children lower their own limits from there


T = TypeVar("T")
TraceCall = tuple[str, str | None, str, str | None]  # source, entry (None: a program), call_args, stdin


@dataclasses.dataclass
class RepoTraceResult:
    episodes: list[TraceResult]
    dropped: dict[str, int]  # episodes dropped, by reason
    pytest_exit_code: int | None
    error: str = ""


class TraceServer:
    """One trace server in its own sandbox. Not for concurrent use: a TracerPool shares several."""

    def __init__(self, backend: str = "bwrap", env_dir: str | None = None):
        self.backend, self.env_dir = backend, env_dir
        self.replaced = 0  # servers that died or hung and were started again
        self._next_id = 0
        self._start()

    def _start(self):
        python = sandbox_python()
        mounts = [Mount(os.path.dirname(os.path.abspath(__file__)), f"{TRACER_MOUNT}/cwm_data")]
        if self.env_dir is not None:
            mounts.append(Mount(os.path.abspath(self.env_dir), ENV_MOUNT))
        view = python.view.plus(SandboxView(tuple(mounts), (("PYTHONHASHSEED", "0"), ("PYTHONDONTWRITEBYTECODE", "1"))))
        # -s: no user site; -S (without an environment): not even the interpreter's own site-packages.
        argv = [env_python(), "-s"] if self.env_dir else [python.executable, "-s", "-S"]
        start = time.perf_counter()
        self.sandbox = make_sandbox(self.backend, _SERVER_LIMITS, view=view)
        # As the sandbox's init (bwrap), the server cannot be killed by the code it traces.
        self.process = self.sandbox.start_process([*argv, "-c", _BOOT], init=True)
        self._buffer = bytearray()
        line = self._read_line(START_TIMEOUT_S)
        hello = _json_or_none(line)
        if hello is None or "ready" not in hello:
            text = (line or self._buffer).decode(errors="replace").strip() or "no output"
            self.close()
            reason = hello.get("refused") if hello else text.splitlines()[-1]
            raise CwmError(f"the trace server did not start in the {self.backend} sandbox: {reason}")
        self.start_seconds = time.perf_counter() - start

    def _read_line(self, timeout: float) -> bytes | None:
        """The next line the server writes, or None if it ended or said nothing in time."""
        deadline = time.monotonic() + timeout
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return line
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                chunk = self.process.read(min(left, 1.0))
            except OSError:
                chunk = None
            if chunk is None:  # ended; what it wrote last (a start-up error) is kept in the buffer
                return None
            self._buffer += chunk

    def ask(self, request: dict, timeout_s: float) -> tuple[dict | None, str]:
        """(the server's result, "") or (None, why there is none); a server that failed is replaced."""
        self._next_id += 1
        request = {**request, "id": self._next_id}
        try:
            self.process.write((json.dumps(request) + "\n").encode())
            line = self._read_line(timeout_s + HOST_GRACE_S)
        except OSError:
            line = None
        if line is None:
            self._replace()
            return None, "the trace server died or stopped answering"
        answer = _json_or_none(line)
        if answer is None:  # one line still came back: the server is in step, the traced code wrote junk
            return None, CORRUPTED
        if answer.get("id") != self._next_id:
            self._replace()
            return None, "the trace server answered out of protocol"
        if "failed" in answer:
            return None, answer["failed"]
        return answer["result"], ""

    def _replace(self):
        self.close()
        self.replaced += 1
        self._start()

    def trace(
        self,
        source: str,
        entry: str | None,
        call_args: str = "",
        stdin: str | None = None,
        limits: TraceLimits = TraceLimits(),
    ) -> TraceResult:
        """Like tracer.trace, but inside the sandbox."""
        start = time.perf_counter()
        request = dict(
            mode="call",
            source=source,
            entry=entry,
            call_args=call_args,
            stdin=stdin,
            limits=dataclasses.asdict(limits),
        )
        traced, why = _decoded(*self.ask(request, limits.timeout_s), TraceResult.from_wire)
        if traced is None:
            traced = TraceResult(KILLED, [], [], source, error=why, seconds=time.perf_counter() - start)
        return traced

    def close(self):
        with contextlib.suppress(Exception):
            self.process.kill()
        with contextlib.suppress(Exception):
            self.sandbox.close()


def _decoded(result: dict | None, why: str, decode: Callable[[dict], T]) -> tuple[T | None, str]:
    """A server's result decoded, or (None, why): what the traced code wrote into its own result that does not
    decode is CORRUPTED."""
    if result is None:
        return None, why
    try:
        return decode(result), ""
    except (TypeError, KeyError, ValueError, AttributeError):
        return None, CORRUPTED


def _json_or_none(line: bytes | None) -> dict | None:
    if not line:
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def trace_once(
    source: str,
    entry: str | None,
    call_args: str = "",
    stdin: str | None = None,
    limits: TraceLimits = TraceLimits(),
    backend: str = "bwrap",
) -> TraceResult:
    """One trace in a fresh sandbox (`cwm trace`)."""
    server = TraceServer(backend)
    try:
        return server.trace(source, entry, call_args, stdin, limits)
    finally:
        server.close()


def trace_test_suite(
    repo_dir: str,
    env_dir: str,
    test_args: Sequence[str] = (),
    limits: TraceLimits = TraceLimits(),
    suite_timeout_s: float = 600.0,
    max_episodes_per_function: int = 5,
    backend: str = "bwrap",
) -> RepoTraceResult:
    """Runs the repo's pytest suite under the tracer in a sandbox with the repo's environment (env_dir, made
    by python_env.build_python_env) and returns its function-level episodes. The sandbox gets a copy of the
    repo's regular files at /work/repo; the host's copy is never written."""
    server = TraceServer(backend, env_dir)
    try:
        for path in regular_files(repo_dir):
            with open(os.path.join(repo_dir, path), "rb") as f:
                server.sandbox.put_file(f"{REPO_DIR}/{path}", f.read())
        request = dict(
            mode="repo",
            repo_dir=REPO_DIR,
            test_args=list(test_args),
            limits=dataclasses.asdict(limits),
            suite_timeout_s=suite_timeout_s,
            max_episodes_per_function=max_episodes_per_function,
        )
        result, why = server.ask(request, suite_timeout_s)
    finally:
        server.close()
    suite, why = _decoded(result, why, _repo_result)
    return RepoTraceResult([], {}, None, error=why) if suite is None else suite


def _repo_result(result: dict) -> RepoTraceResult:
    return RepoTraceResult(
        [TraceResult.from_wire(e) for e in result["episodes"]],
        dict(result["dropped"]),
        result["exit_code"],
        result.get("error", ""),
    )


class TracerPool:
    """Trace servers shared by threads: borrow one per trace. Servers start on first use and are all closed
    at close, at interpreter exit and after Ctrl-C."""

    def __init__(self, size: int, backend: str = "bwrap"):
        self.size, self.backend = size, backend
        self._idle: queue.Queue[TraceServer] = queue.Queue()
        self._all: list[TraceServer] = []
        self._started = 0
        self._lock = threading.Lock()
        atexit.register(self.close)

    @contextlib.contextmanager
    def server(self):
        with self._lock:
            start = self._idle.empty() and self._started < self.size
            self._started += start
        if start:
            server = TraceServer(self.backend)
            with self._lock:
                self._all.append(server)
        else:
            server = self._idle.get()
        try:
            yield server
        finally:
            self._idle.put(server)

    def trace(self, source: str, entry: str | None, call_args: str = "", stdin=None, limits=TraceLimits()):
        with self.server() as server:
            return server.trace(source, entry, call_args, stdin, limits)

    def trace_all(self, calls: Iterable[TraceCall], limits: TraceLimits) -> Iterator[TraceResult]:
        """The traces of (source, entry, call_args, stdin) calls, in order, `size` at a time."""
        with ThreadPoolExecutor(self.size) as threads:
            yield from threads.map(lambda c: self.trace(c[0], c[1], c[2], c[3], limits), calls)

    def close(self):
        with self._lock:
            servers, self._all = self._all, []
        for server in servers:
            server.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
