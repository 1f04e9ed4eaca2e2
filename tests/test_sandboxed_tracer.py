"""The trace server in a sandbox (each backend): traces equal the in-process tracer's, every way of not
ending is stopped and reported, and a trace that breaks its server costs only itself."""

import glob
import hashlib
import json
import os
import pathlib
import sys
import time

import pytest
from sandbox_fixtures import BACKENDS

from cwm_common.repo_paths import CORPUS, CRUXEVAL
from cwm_data import trace_format
from cwm_data.generators.corpus_jobs import function_jobs, program_jobs
from cwm_data.sandboxed_tracer import TracerPool, TraceServer
from cwm_data.trace_frames import KILLED, MEMORY_LIMIT, OK, STEP_LIMIT, TIMEOUT, TraceLimits
from cwm_data.tracer import trace

SOURCE = """
import os, signal, time

def add(a, b):
    c = {a, b, 10, -1}
    return a + b, sorted(c, key=str)

def spin():
    while True:
        pass

def spin_swallowing():
    while True:
        try:
            while True:
                pass
        except BaseException:
            pass

def hog():
    blocks = []
    while True:
        blocks.append(bytearray(50_000_000))

def fork_bomb():
    children = 0
    for _ in range(50):
        try:
            if os.fork() == 0:
                os._exit(0)
            children += 1
        except OSError as e:
            return children, type(e).__name__
    return children, None

def hang_in_c():
    time.sleep(60)

def noisy():
    print("to captured stdout")
    os.write(1, b"straight to fd 1")
    return 1

def kill_server():
    os.kill(os.getppid(), signal.SIGKILL)
    time.sleep(0.5)
    return "survived"

def open_server_pipes():
    opened = []
    for fd in os.listdir(f"/proc/{os.getppid()}/fd"):
        try:
            os.open(f"/proc/{os.getppid()}/fd/{fd}", os.O_WRONLY)
            opened.append(fd)
        except OSError:
            pass
    return opened

def forge_result():
    for fd in map(int, os.listdir("/proc/self/fd")):
        try:
            os.write(fd, b'{"status": "ok", "frames": []}\\nmore\\n')
        except OSError:
            pass
    return 0
"""
LIMITS = TraceLimits(timeout_s=1.0, memory_mb=300)
ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(params=BACKENDS, scope="module")
def server(request):
    server = TraceServer(request.param)
    yield server
    server.close()


def test_traces_equal_the_in_process_tracer_and_print_nothing_to_us(server):
    result = server.trace(SOURCE, "add", "2, 3", limits=LIMITS)
    here = trace(SOURCE, "add", "2, 3", limits=LIMITS)
    assert result.status == OK and result.frames == here.frames and result.source == here.source
    noisy = server.trace(SOURCE, "noisy", limits=LIMITS)
    assert noisy.status == OK and noisy.stdout == "to captured stdout\n"


def test_infinite_loops_stop_at_the_step_budget_or_the_clock(server):
    assert server.trace(SOURCE, "spin", limits=LIMITS).status == STEP_LIMIT
    start = time.perf_counter()
    result = server.trace(SOURCE, "spin_swallowing", limits=TraceLimits(max_steps=10**9, timeout_s=1.0))
    assert result.status == TIMEOUT and 100 < len(result.frames) <= 2000  # the partial trace's start comes back
    assert time.perf_counter() - start < 60  # ended, not hung (a liveness bound, not speed)


def test_unbounded_allocation_is_stopped(server):
    assert server.trace(SOURCE, "hog", limits=LIMITS).status == MEMORY_LIMIT


def test_forks_are_refused(server):
    result = server.trace(SOURCE, "fork_bomb", limits=LIMITS)
    assert result.status == OK and result.frames[-1].value == "(0, 'BlockingIOError')"


def test_code_hung_outside_python_is_killed_and_the_next_trace_runs(server):
    result = server.trace(SOURCE, "hang_in_c", limits=LIMITS)
    assert result.status == KILLED and "no result within" in result.error
    assert server.trace(SOURCE, "add", "1, 1", limits=LIMITS).status == OK


def test_a_trace_cannot_kill_its_server_or_only_itself(server):
    """bwrap: the server is its namespace's init, which nothing inside can signal. Docker: a process of the
    sandbox user can kill it; the trace is then reported and the server replaced, container and all."""
    replaced = server.replaced
    result = server.trace(SOURCE, "kill_server", limits=LIMITS)
    if server.backend == "bwrap":
        assert result.status == OK and result.frames[-1].value == "'survived'" and server.replaced == replaced
    else:
        assert result.status == KILLED and "trace server died" in result.error
        assert server.replaced == replaced + 1
    assert server.trace(SOURCE, "add", "1, 1", limits=LIMITS).status == OK


def test_a_trace_cannot_reach_its_servers_pipes_through_proc(server):
    result = server.trace(SOURCE, "open_server_pipes", limits=LIMITS)
    # The server is not dumpable: its /proc entries are root's, so even listing its descriptors fails.
    assert result.status == "exception" and "PermissionError" in result.frames[-1].value


def test_a_trace_cannot_write_answers_for_others(server):
    replaced = server.replaced
    forged = server.trace(SOURCE, "forge_result", limits=LIMITS)
    # Only its own result pipe is open to it: what it wrote there is its own (broken) result, nothing more.
    assert forged.status == KILLED and "corrupted" in forged.error
    after = server.trace(SOURCE, "add", "1, 1", limits=LIMITS)
    assert after.status == OK and after.frames == trace(SOURCE, "add", "1, 1", limits=LIMITS).frames
    assert server.replaced == replaced


def _digest(result) -> str:
    """A trace's status, CWM text and stdout; an incomplete trace (never kept) by its status and stdout only."""
    pieces = trace_format.prompt(result.source) + trace_format.render(result.frames, result.complete)
    text = trace_format.to_text(pieces) if result.complete else ""
    return hashlib.sha256(json.dumps([result.status, text, result.stdout]).encode()).hexdigest()[:16]


@pytest.mark.bwrap
def test_cruxeval_and_the_shipped_corpus_trace_as_before_the_sandbox():
    """tests/data/trace_goldens.json: digests of every trace (status, CWM text, stdout) the in-process tracer
    made before tracing moved into sandboxes (PYTHONHASHSEED=0, as in the sandbox; regenerate the same way
    only when the trace format itself changes). Traces are Python's own execution, so they depend on its
    version: 3.12's goldens (trace_goldens_py312.json, made by the in-process tracer under 3.12) differ from
    3.11's in 2 CRUXEval and 9 corpus traces: sum() of floats compensates rounding, a generator function
    called as the entry is not entered before its first next(), a comprehension written over several lines
    has no line event on its first line, and comprehension variables come earlier among the locals."""
    name = "trace_goldens.json" if sys.version_info < (3, 12) else f"trace_goldens_py3{sys.version_info.minor}.json"
    golden = json.loads((ROOT / "tests" / "data" / name).read_text())
    limits = TraceLimits(max_steps=20_000, timeout_s=5.0)
    crux = [json.loads(line) for line in open(CRUXEVAL)]
    jobs, _ = function_jobs(sorted(glob.glob(os.path.join(CORPUS, "functions", "*.py"))), per_function=8)
    jobs += program_jobs(sorted(glob.glob(os.path.join(CORPUS, "programs", "*.py"))))
    with TracerPool(2) as tracers:
        crux_digests = [
            _digest(r) for r in tracers.trace_all([(s["code"], "f", s["input"], None) for s in crux], limits)
        ]
        corpus_calls = [(j.source, j.entry, j.call_args, j.stdin) for j in jobs]
        corpus_digests = [_digest(r) for r in tracers.trace_all(corpus_calls, limits)]
    assert len(crux_digests) == 800 and crux_digests == golden["cruxeval"]
    assert len(corpus_digests) == 212 and corpus_digests == golden["corpus"]
