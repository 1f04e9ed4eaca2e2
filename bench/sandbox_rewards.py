"""HumanEval rewards per second and SWE task grading seconds through each sandbox backend, before and after
a change (by default the hardened graders against the commit before them), in the same run; a bare
`subprocess` run of the same harness with the same interpreter (Debian's python3, which the sandboxes
run) as the limit; and sandbox start latency p50/p99.

    python bench/sandbox_rewards.py [--backends bwrap,docker] [--before REV] [--rounds 3] [--starts 40]

"Before" and "after" each run in a fresh process over that revision's source (git archive), alternating
round by round; the median round is printed.
"""

import argparse
import inspect
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE_ROOTS = (".", "data", "envs", "rl", "tasks")  # pyproject's package folders
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"  # what both backends set: python3 is the system's
BEFORE = "eba570b"  # the last commit before the hardened graders and sandbox limits
CONCURRENCY = (1, 4)
SWE_REPEATS = 3


def make_bare_process():
    """The sandbox interface with no isolation at all (the limit): a temp dir and a plain subprocess with
    the sandboxes' PATH, so the same python3 runs the same harness."""
    from cwm_envs.bounded_process import run_bounded
    from cwm_envs.sandbox import ExecResult, SandboxLimits, as_argv, as_bytes
    from cwm_envs.sandbox_files import read_file, write_file

    class BareProcess:
        backend = "bare subprocess"
        limits = SandboxLimits()

        def __init__(self):
            self.work_dir = tempfile.mkdtemp(prefix="cwm-bare-")

        def exec(self, command, *, stdin=None, timeout=None) -> ExecResult:
            env = {"PATH": SANDBOX_PATH, "HOME": self.work_dir, "LANG": "C.UTF-8"}
            return run_bounded(as_argv(command), as_bytes(stdin), timeout or 30, 1 << 20, cwd=self.work_dir, env=env)

        def put_file(self, path, data):
            write_file(self.work_dir, path, as_bytes(data), None)

        def get_file(self, path):
            return read_file(self.work_dir, path)

        def reset(self):
            shutil.rmtree(self.work_dir)
            os.mkdir(self.work_dir)

        def alive(self):
            return True

        def close(self):
            shutil.rmtree(self.work_dir, ignore_errors=True)

    return BareProcess


def measure(backend: str) -> dict:
    """Rewards/s at each concurrency and SWE gold-patch grading seconds, with whatever cwm packages import."""
    from cwm_envs.pool import SandboxPool
    from cwm_envs.sandbox import SandboxLimits
    from cwm_envs.sandbox_factory import make_sandbox
    from cwm_tasks.humaneval import grade_function, humaneval_tasks
    from cwm_tasks.swe import grade_swe, shipped_swe_tasks

    def factory():
        return make_bare_process()() if backend == "bare" else make_sandbox(backend, SandboxLimits(timeout_s=30))

    trusted_prelude = "prelude" in inspect.signature(grade_function).parameters
    tasks = humaneval_tasks()
    rates = {}
    for concurrency in CONCURRENCY:
        with SandboxPool(factory, concurrency) as pool:

            def grade(task):
                extra = {"prelude": task.prompt} if trusted_prelude else {}
                with pool.sandbox() as sandbox:
                    program = task.program(task.canonical_solution)
                    return grade_function(sandbox, program, task.tests, task.entry_point, **extra)

            start = time.perf_counter()
            with ThreadPoolExecutor(concurrency) as threads:
                results = list(threads.map(grade, tasks))
            rates[concurrency] = len(tasks) / (time.perf_counter() - start)
        assert all(r.reward == 1 for r in results), [r.status for r in results if r.reward != 1][:3]
    swe = []
    sandbox = factory()
    try:
        for task in shipped_swe_tasks():
            for _ in range(SWE_REPEATS):
                sandbox.reset()
                start = time.perf_counter()
                result = grade_swe(sandbox, task, task.gold_patch)
                swe.append(time.perf_counter() - start)
                assert result.reward == 1, (task.instance_id, result.status, result.log[-300:])
    finally:
        sandbox.close()
    return {"rates": rates, "swe_seconds": statistics.median(swe)}


def source_tree(revision: str | None) -> str:
    """A folder holding the source at `revision` (None: the working tree itself)."""
    if revision is None:
        return REPO
    folder = tempfile.mkdtemp(prefix="cwm-bench-src-")
    archive = subprocess.run(["git", "-C", REPO, "archive", revision], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    return folder


def measure_in(tree: str, backend: str) -> dict:
    """`measure` in a fresh process whose cwm packages come from `tree`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(os.path.join(tree, root) for root in PACKAGE_ROOTS)}
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--measure", backend],
        env=env,
        cwd=tree,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.splitlines()[-1])


def start_latency(backend: str, count: int) -> tuple[float, float]:
    from cwm_envs.sandbox_factory import make_sandbox

    times = []
    for _ in range(count):
        start = time.perf_counter()
        sandbox = make_sandbox(backend)
        sandbox.exec(["true"])
        times.append(time.perf_counter() - start)
        sandbox.close()
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.99 * len(times)))]


def _median_round(rounds: list[dict]) -> dict:
    return {
        "rates": {c: statistics.median(r["rates"][str(c)] for r in rounds) for c in CONCURRENCY},
        "swe_seconds": statistics.median(r["swe_seconds"] for r in rounds),
    }


def _row(name: str, result: dict, bare: dict) -> str:
    rates = "  ".join(
        f"c={c}: {result['rates'][c]:6.1f}/s ({result['rates'][c] / bare['rates'][c]:.2f}x bare)" for c in CONCURRENCY
    )
    return f"{name:<26} {rates}  SWE gold patch {result['swe_seconds']:.2f} s"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="bwrap,docker")
    parser.add_argument("--before", default=BEFORE, help="the revision to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--starts", type=int, default=40)
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: one measurement, printed as JSON
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    before = source_tree(args.before)
    try:
        print(
            f"164 HumanEval canonical solutions; SWE: {SWE_REPEATS} gradings of each shipped task's gold patch; "
            f"{os.cpu_count()} cores; before = {args.before}, after = the working tree; median of {args.rounds} rounds"
        )
        bare = _median_round([measure_in(REPO, "bare") for _ in range(args.rounds)])
        print(_row("bare subprocess (after)", bare, bare))
        for backend in args.backends.split(","):
            runs: dict[str, list[dict]] = {"before": [], "after": []}
            for _ in range(args.rounds):  # alternating: drift on a noisy machine hits both alike
                runs["before"].append(measure_in(before, backend))
                runs["after"].append(measure_in(REPO, backend))
            results = {name: _median_round(rounds) for name, rounds in runs.items()}
            for name, result in results.items():
                print(_row(f"{backend} ({name})", result, bare))
            change = {c: results["after"]["rates"][c] / results["before"]["rates"][c] - 1 for c in CONCURRENCY}
            swe = results["after"]["swe_seconds"] / results["before"]["swe_seconds"] - 1
            print(
                f"{backend} after vs before: "
                + "  ".join(f"c={c}: rewards/s {change[c] * 100:+.0f}%" for c in CONCURRENCY)
                + f"  SWE grading seconds {swe * 100:+.0f}%"
            )
        for backend in args.backends.split(","):
            p50, p99 = start_latency(backend, args.starts)
            print(f"{backend} start + first command: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    finally:
        if before != REPO:
            shutil.rmtree(before, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
