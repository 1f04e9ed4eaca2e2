"""`cwm gen-tasks mutate-fix`: SWE tasks made by breaking a real project on purpose (CWM.md 4.1).

Mutations (mutations.py) of the project's source files, never its tests, are tried in a seeded order. Each
runs the suite in the project's environment (`cwm env build`); one is kept when tests that passed before it
now fail. A kept mutation is a task folder in the format `cwm reward swe --task` reads: the mutated
repository, FAIL_TO_PASS (the tests it broke, each of which passed before), PASS_TO_PASS (the rest that
passed), the gold patch (the mutation's inverse), no test patch (the tests are in the repository), and the
environment the task runs in. Every tried mutation is logged to progress.jsonl, so a rerun skips it; a suite
that times out or a sandbox that fails is counted and the run goes on. A task is kept only once its own
grader scores its gold patch +1. report.json holds the counts and the
mix of mutation kinds, tried and kept.
"""

import hashlib
import json
import os
import random
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable

from cwm_common.errors import CwmError
from cwm_envs.sandbox_factory import make_sandbox
from cwm_tasks.mutations import KINDS, Mutation, mutations_of, unified_patch
from cwm_tasks.project_env import ENV_DIR, ENV_FILE, REPO_DIR, is_test_file, run_suite, suite_limits
from cwm_tasks.swe import SweTask, grade_swe

PROGRESS_FILE = "progress.jsonl"
REPORT_FILE = "report.json"
_NOT_SOURCE_DIRS = {"tests", "test", "testing", "docs", "doc", "examples", "benchmarks", "scripts", ".github"}
_NOT_SOURCE_FILES = {"setup.py", "conftest.py", "noxfile.py", "fabfile.py", "_version.py", "version.py"}


def source_files(repo: str, test_paths) -> list[str]:
    """The project's own Python files (relative paths): not its tests, docs, examples or build scripts. A test
    path that is the package itself (pytest's testpaths naming `toolz`, whose tests sit in `toolz/tests`)
    excludes only what is named as tests."""
    tests = {p.rstrip("/") for p in test_paths if os.path.isfile(os.path.join(repo, p)) or _is_test_dir(p)}
    found = []
    for root, dirs, files in os.walk(repo):
        rel_root = os.path.relpath(root, repo)
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in _NOT_SOURCE_DIRS
            and not d.startswith(".")
            and os.path.normpath(os.path.join(rel_root, d)) not in tests
        )
        for name in sorted(files):
            path = os.path.normpath(os.path.join(rel_root, name))
            if name.endswith(".py") and name not in _NOT_SOURCE_FILES and not is_test_file(name) and path not in tests:
                found.append(path)
    return found


def _is_test_dir(path: str) -> bool:
    name = os.path.basename(path.rstrip("/"))
    return name in _NOT_SOURCE_DIRS or name.startswith("test")


def problem_statement(fail_to_pass: list[str]) -> str:
    shown = fail_to_pass[:10]
    more = f"\n(and {len(fail_to_pass) - len(shown)} more)" if len(fail_to_pass) > len(shown) else ""
    return (
        "These tests used to pass and now fail:\n"
        + "\n".join(f"- {t}" for t in shown)
        + more
        + "\nFind the bug in the project's source code and fix it, without changing the tests."
    )


def generate_mutate_fix(
    env_dir: str,
    out: str,
    limit: int | None = None,
    seed: int = 0,
    max_tried: int | None = None,
    backend: str = "bwrap",
    suite_timeout: float = 300.0,
    log: Callable[[str], None] = print,
) -> dict:
    """Writes up to `limit` task folders under `out`, trying at most `max_tried` mutations (both counted over
    reruns); returns the report (also out/report.json)."""
    env_dir = os.path.abspath(env_dir)
    env = _read_env(env_dir)
    repo = os.path.join(env_dir, REPO_DIR)
    passing = set(env["passing"])
    project = re.sub(r"[^A-Za-z0-9]+", "-", os.path.basename(env_dir.rstrip("/"))).strip("-") or "project"
    os.makedirs(out, exist_ok=True)
    tried = _read_progress(out)
    candidates = []
    for path in source_files(repo, env["test_paths"]):
        with open(os.path.join(repo, path), encoding="utf-8", errors="surrogateescape") as f:
            candidates += mutations_of(path, f.read())
    random.Random(seed).shuffle(candidates)
    kept = sum(1 for record in tried.values() if record["kept"])
    with open(os.path.join(out, PROGRESS_FILE), "a") as progress:
        for mutation in candidates:
            if (limit is not None and kept >= limit) or (max_tried is not None and len(tried) >= max_tried):
                break
            if mutation.key in tried:
                continue
            record = _try(mutation, repo, env_dir, env, passing, project, out, backend, suite_timeout)
            tried[mutation.key] = record
            progress.write(json.dumps(record) + "\n")
            progress.flush()
            kept += record["kept"]
            log(f"[{len(tried)} tried, {kept} kept] {mutation.key}: {record['outcome']}")
    report = _report(tried, len(candidates))
    with open(os.path.join(out, REPORT_FILE), "w") as f:
        json.dump(report, f, indent=1)
    log(f"{report['kept']} tasks kept of {report['tried']} mutations tried ({report['kept_share']:.0%}); {out}")
    return report


def _read_env(env_dir: str) -> dict:
    path = os.path.join(env_dir, ENV_FILE)
    try:
        with open(path) as f:
            env = json.load(f)
    except (OSError, ValueError) as e:
        raise CwmError(f"{path}: not a `cwm env build` environment ({e})") from None
    for key in ("passing", "test_paths"):
        if not isinstance(env.get(key), list):
            raise CwmError(f"{path}: '{key}' must be a list")
    if not os.path.isdir(os.path.join(env_dir, ENV_DIR)) or not os.path.isdir(os.path.join(env_dir, REPO_DIR)):
        raise CwmError(f"{env_dir}: the environment's {ENV_DIR}/ or {REPO_DIR}/ folder is missing")
    return env


def _read_progress(out: str) -> dict[str, dict]:
    """The mutations tried so far. A last line a crash cut short is dropped (tried again), and the file is
    made to end with a newline, so the next record starts a line of its own."""
    tried: dict[str, dict] = {}
    path = os.path.join(out, PROGRESS_FILE)
    if not os.path.exists(path):
        return tried
    with open(path) as f:
        lines = f.read().split("\n")
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
            tried[record["key"]] = record
        except (ValueError, KeyError, TypeError):
            if line.strip() and number < len(lines):  # only the last line can be cut short
                raise CwmError(f"{path}:{number}: not a progress record") from None
    if lines[-1]:
        with open(path, "a") as f:
            f.write("\n")
    return tried


def _try(mutation: Mutation, repo, env_dir, env, passing, project, out, backend, suite_timeout) -> dict:
    record = {"key": mutation.key, "kind": mutation.kind, "kept": False}
    with tempfile.TemporaryDirectory() as tmp:
        mutated_repo = os.path.join(tmp, REPO_DIR)
        shutil.copytree(repo, mutated_repo)
        with open(os.path.join(mutated_repo, mutation.path), "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(mutation.mutated)
        try:
            outcomes = run_suite(
                mutated_repo, os.path.join(env_dir, ENV_DIR), env["test_paths"], backend, suite_timeout
            )
        except Exception as e:  # the suite timed out or the sandbox failed: count it, go on
            return {**record, "outcome": "suite_failed", "why": f"{type(e).__name__}: {str(e)[:300]}"}
        fail_to_pass = sorted(t for t in passing if outcomes.get(t) != "passed")
        if not fail_to_pass:
            return {**record, "outcome": "no_test_failed"}
        pass_to_pass = sorted(t for t in passing if outcomes.get(t) == "passed")
        digest = hashlib.sha256(mutation.key.encode()).hexdigest()[:10]
        instance_id = f"{project}-{mutation.kind}-{digest}"
        folder = os.path.join(out, instance_id)
        partial = folder + ".partial"  # renamed into place once graded: a crash leaves no half task
        for stale in (folder, partial):
            shutil.rmtree(stale, ignore_errors=True)
        os.makedirs(partial)
        with open(os.path.join(repo, mutation.path), encoding="utf-8", errors="surrogateescape") as f:
            original = f.read()
        task = {
            "instance_id": instance_id,
            "problem_statement": problem_statement(fail_to_pass),
            "FAIL_TO_PASS": fail_to_pass,
            "PASS_TO_PASS": pass_to_pass,
            "gold_patch": unified_patch(mutation.path, mutation.mutated, original),
            "test_patch": "",
            "environment": os.path.relpath(env_dir, folder),
            "mutation": {
                "kind": mutation.kind,
                "path": mutation.path,
                "line": mutation.line,
                "change": mutation.description,
            },
        }
        shutil.copytree(mutated_repo, os.path.join(partial, REPO_DIR))
        with open(os.path.join(partial, "task.json"), "w") as f:
            json.dump(task, f, indent=1)
        gold = _grade_gold(partial, backend, suite_timeout)
        if gold != "passed":  # e.g. the fix touches a file the grader restores, or a test is flaky
            shutil.rmtree(partial)
            return {**record, "outcome": "gold_failed", "why": gold}
        os.replace(partial, folder)
    return {**record, "kept": True, "outcome": "kept", "instance_id": instance_id, "fail_to_pass": len(fail_to_pass)}


def _grade_gold(folder: str, backend: str, timeout: float) -> str:
    """How the task's own grader scores its gold patch: "passed", or the failing status."""
    task = SweTask.load(folder)
    try:
        sandbox = make_sandbox(backend, suite_limits(timeout), view=task.sandbox_view())
        try:
            return grade_swe(sandbox, task, task.gold_patch, timeout=timeout).status
        finally:
            sandbox.close()
    except Exception as e:  # a dead sandbox: the mutation is counted, not kept
        return f"{type(e).__name__}: {str(e)[:200]}"


def _report(tried: dict[str, dict], candidates: int) -> dict:
    kinds = {kind: {"tried": 0, "kept": 0} for kind in KINDS}
    for record in tried.values():
        kinds[record["kind"]]["tried"] += 1
        kinds[record["kind"]]["kept"] += record["kept"]
    outcomes = Counter(record["outcome"] for record in tried.values())
    kept = outcomes["kept"]
    return {
        "candidates": candidates,
        "tried": len(tried),
        "kept": kept,
        "kept_share": kept / len(tried) if tried else 0.0,
        "outcomes": dict(sorted(outcomes.items())),
        "kinds": kinds,
    }
