"""Repository-level trace generation: a local repo's pytest suite, run in a sandbox with the repo's own
environment -> function-level episodes -> shards."""

import importlib.metadata
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence

from cwm_data.generators.trace_jobs import GenerationReport
from cwm_data.sandboxed_tracer import trace_test_suite
from cwm_data.shards import ShardWriter
from cwm_data.trace_frames import EXCEPTION_EXIT, TraceLimits
from cwm_envs.python_env import read_requirements


def repo_test_requirements(repo_dir: str, requirements_file: str | None = None) -> list[str]:
    """What the repo's suite needs: its requirements file's lines (the repo's requirements.txt by default, if
    there is one) and the pytest this project runs, which the in-sandbox tracer drives."""
    path = requirements_file or os.path.join(repo_dir, "requirements.txt")
    listed = read_requirements(path) if requirements_file or os.path.exists(path) else []
    if any(_name(r) == "pytest" for r in listed):
        return listed
    return [*listed, f"pytest=={importlib.metadata.version('pytest')}"]


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;@]", requirement, maxsplit=1)[0].lower()


def generate_repo_traces(
    repo_dir: str,
    env_dir: str,
    out_dir: str,
    limits: TraceLimits,
    test_args: Sequence[str] = (),
    suite_timeout_s: float = 600.0,
    max_episodes_per_function: int = 5,
    log: Callable[[str], None] = print,
    backend: str = "bwrap",
) -> GenerationReport:
    """env_dir: the repo's environment (python_env.build_python_env), with pytest."""
    start = time.perf_counter()
    log(f"running the test suite of {repo_dir} under the tracer in a {backend} sandbox (call depth {limits.max_depth})")
    result = trace_test_suite(repo_dir, env_dir, test_args, limits, suite_timeout_s, max_episodes_per_function, backend)
    dropped = Counter(result.dropped)
    if result.error:
        dropped["suite_failed_to_run"] += 1
        log(f"the suite produced no result: {result.error}")
    name = os.path.basename(os.path.abspath(repo_dir))
    with ShardWriter(out_dir, f"repo-{name}") as shards:
        for episode in result.episodes:
            shards.write(
                json.dumps(
                    {
                        "source": episode.source,
                        "status": episode.status,
                        "origin": repo_dir,
                        "frames": [f.to_json() for f in episode.frames],
                    }
                ).encode()
            )
        paths = shards.close()
    report = GenerationReport(
        jobs=len(result.episodes) + sum(dropped.values()),
        kept=len(result.episodes),
        kept_exceptions=sum(e.status == EXCEPTION_EXIT for e in result.episodes),
        dropped=dropped,
        seconds=time.perf_counter() - start,
        shards=paths,
    )
    with open(os.path.join(out_dir, f"repo-{name}-report.json"), "w") as f:
        json.dump(
            {**report.__dict__, "dropped": dict(dropped), "pytest_exit_code": result.pytest_exit_code}, f, indent=1
        )
    log(f"pytest exit code {result.pytest_exit_code}; " + report.summary())
    return report
