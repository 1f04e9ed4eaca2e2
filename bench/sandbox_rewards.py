"""HumanEval rewards per second through each sandbox backend at concurrency 1, 2, 4, 8, against a bare
`subprocess` run of the same grading harness on the host (the limit), in the same run; and sandbox start
latency p50/p99.

    python bench/sandbox_rewards.py [--backends bwrap,docker] [--starts 40]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from cwm_envs.bounded_process import run_bounded
from cwm_envs.pool import SandboxPool
from cwm_envs.sandbox import SHELL, ExecResult, Sandbox, SandboxLimits, as_argv, as_bytes
from cwm_envs.sandbox_factory import make_sandbox
from cwm_envs.sandbox_files import read_file, write_file
from cwm_envs.shell_session import PipeShell
from cwm_tasks.humaneval import grade_function, humaneval_tasks


class BareProcess:
    """The same interface with no isolation at all: a temp dir and a plain subprocess (the limit)."""

    backend = "bare subprocess"
    limits = SandboxLimits()

    def __init__(self):
        self.work_dir = tempfile.mkdtemp(prefix="cwm-bare-")

    def exec(self, command, *, stdin=None, timeout=None) -> ExecResult:
        return run_bounded(as_argv(command), as_bytes(stdin), timeout or 30, 1 << 20, cwd=self.work_dir)

    def put_file(self, path, data):
        write_file(self.work_dir, path, as_bytes(data), None)

    def get_file(self, path):
        return read_file(self.work_dir, path)

    def open_shell(self) -> PipeShell:
        return self.start_process(SHELL)

    def start_process(self, argv: list[str], init: bool = False) -> PipeShell:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.work_dir,
            start_new_session=True,
        )
        return PipeShell(process)

    def reset(self):
        shutil.rmtree(self.work_dir)
        os.mkdir(self.work_dir)

    def alive(self):
        return True

    def close(self):
        shutil.rmtree(self.work_dir, ignore_errors=True)


def rewards_per_second(factory, tasks, concurrency: int) -> float:
    with SandboxPool(factory, concurrency) as pool:

        def grade(task):
            with pool.sandbox() as sandbox:
                return grade_function(sandbox, task.program(task.canonical_solution), task.tests, task.entry_point)

        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as threads:
            results = list(threads.map(grade, tasks))
        seconds = time.perf_counter() - start
    assert all(r.reward == 1 for r in results), [r.status for r in results if r.reward != 1][:3]
    return len(tasks) / seconds


def start_latency(backend: str, count: int) -> tuple[float, float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        sandbox = make_sandbox(backend)
        sandbox.exec(["true"])
        times.append(time.perf_counter() - start)
        sandbox.close()
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.99 * len(times)))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="bwrap,docker")
    parser.add_argument("--starts", type=int, default=40)
    args = parser.parse_args()
    tasks = humaneval_tasks()
    print(f"{len(tasks)} HumanEval tasks, canonical solutions; {os.cpu_count()} cores")
    factories: dict[str, Callable[[], Sandbox]] = {"bare subprocess": BareProcess}
    for backend in args.backends.split(","):

        def backend_factory(backend: str = backend) -> Sandbox:
            return make_sandbox(backend, SandboxLimits(timeout_s=30))

        factories[backend] = backend_factory
    bare: dict[int, float] = {}
    for name, factory in factories.items():
        row = []
        for concurrency in (1, 2, 4, 8):
            rate = rewards_per_second(factory, tasks, concurrency)
            bare.setdefault(concurrency, rate)
            row.append(f"c={concurrency}: {rate:6.1f}/s ({rate / bare[concurrency]:.2f}x bare)")
        print(f"{name:<16} " + "  ".join(row))
    for backend in args.backends.split(","):
        p50, p99 = start_latency(backend, args.starts)
        print(f"{backend} start + first command: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")


if __name__ == "__main__":
    sys.exit(main())
