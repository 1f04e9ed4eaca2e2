"""Untrusted code under the separate-process runner: every way of not ending is stopped and reported."""

import time

from cwm_data.trace_frames import KILLED, MEMORY_LIMIT, OK, STEP_LIMIT, TIMEOUT, TraceLimits
from cwm_data.trace_runner import run_trace

SOURCE = """
import os, time

def add(a, b):
    return a + b

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
"""
LIMITS = TraceLimits(timeout_s=1.0, memory_mb=300)


def test_normal_code_traces_and_prints_nothing_to_us():
    result = run_trace(SOURCE, "add", "2, 3", limits=LIMITS)
    assert result.status == OK and result.frames[-1].value == "5"
    noisy = run_trace(SOURCE, "noisy", limits=LIMITS)
    assert noisy.status == OK and noisy.stdout == "to captured stdout\n"


def test_infinite_loops_stop_at_the_step_budget_or_the_clock():
    assert run_trace(SOURCE, "spin", limits=LIMITS).status == STEP_LIMIT
    start = time.perf_counter()
    result = run_trace(SOURCE, "spin_swallowing", limits=TraceLimits(max_steps=10**9, timeout_s=1.0))
    assert result.status == TIMEOUT and len(result.frames) > 100  # partial frames come back
    assert time.perf_counter() - start < 60  # ended, not hung (a liveness bound, not speed)


def test_unbounded_allocation_is_stopped():
    result = run_trace(SOURCE, "hog", limits=LIMITS)
    assert result.status == MEMORY_LIMIT


def test_forks_are_refused():
    result = run_trace(SOURCE, "fork_bomb", limits=LIMITS)
    assert result.status == OK and result.frames[-1].value == "(0, 'BlockingIOError')"


def test_code_hung_outside_python_is_killed_and_the_next_run_works():
    start = time.perf_counter()
    result = run_trace(SOURCE, "hang_in_c", limits=LIMITS)
    assert result.status == KILLED and "no result" in result.error
    assert time.perf_counter() - start < 60  # ended, not hung (a liveness bound, not speed)
    assert run_trace(SOURCE, "add", "1, 1", limits=LIMITS).status == OK
