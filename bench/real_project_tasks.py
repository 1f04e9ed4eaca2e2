"""Environment builds and mutate-fix tasks per hour per core, for a real PyPI project, against the floor in
the same run: one run of the project's suite in a sandbox of its environment (what every mutation costs at
least).

    python bench/real_project_tasks.py [--source pypi:inflection==0.5.1] [--builds 2] [--mutations 20]

Every step runs one job at a time, each a single-threaded process tree in a sandbox, so "per core" is per
hour of wall time. (The processes inside a bwrap sandbox are reaped in its own pid namespace and never reach
this process's rusage, so CPU time cannot be counted here.)
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

from cwm_tasks.mutate_fix import generate_mutate_fix
from cwm_tasks.project_env import ENV_DIR, ENV_FILE, REPO_DIR, build_project_env, run_suite


def measured(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", default="pypi:inflection==0.5.1")
    parser.add_argument("--builds", type=int, default=2)
    parser.add_argument("--mutations", type=int, default=20)
    parser.add_argument("--backend", default="bwrap")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="cwm-bench-tasks-")
    try:
        builds = []
        for i in range(args.builds):
            out = os.path.join(root, f"env{i}")
            _, wall = measured(lambda out=out: build_project_env(args.source, out, args.backend, log=lambda m: None))
            builds.append(wall)
        env_dir = os.path.join(root, "env0")
        with open(os.path.join(env_dir, ENV_FILE)) as f:
            env = json.load(f)
        suites = [
            measured(
                lambda: run_suite(
                    os.path.join(env_dir, REPO_DIR),
                    os.path.join(env_dir, ENV_DIR),
                    env["test_paths"],
                    args.backend,
                    600,
                )
            )[1]
            for _ in range(3)
        ]
        tasks = os.path.join(root, "tasks")
        report, mutate_wall = measured(
            lambda: generate_mutate_fix(
                env_dir, tasks, seed=0, max_tried=args.mutations, backend=args.backend, log=lambda m: None
            )
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    build_wall, suite_wall = statistics.median(builds), statistics.median(suites)
    tried, kept = report["tried"], report["kept"]
    print(
        f"project: {args.source}, {len(env['passing'])} passing tests; python {sys.version.split()[0]}; {args.backend}"
    )
    print(
        f"environment build: {build_wall:.1f} s (median of {args.builds}) -> {3600 / build_wall:.0f} builds per hour "
        f"per core; {build_wall / suite_wall:.1f}x one suite run"
    )
    print(f"floor, one suite run in the sandbox: {suite_wall:.2f} s (median of 3)")
    print(
        f"mutate-fix: {tried} mutations tried, {kept} kept ({kept / tried:.0%}) in {mutate_wall:.1f} s -> "
        f"{kept * 3600 / mutate_wall:.0f} tasks per hour per core; "
        f"{mutate_wall / tried:.2f} s per mutation = {mutate_wall / tried / suite_wall:.2f}x the floor"
    )
    print("kinds tried/kept: " + ", ".join(f"{k} {v['tried']}/{v['kept']}" for k, v in report["kinds"].items()))
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in report["outcomes"].items()))


if __name__ == "__main__":
    main()
