"""`cwm gen-tasks issue-fix`: SWE tasks from SWE-bench-style instances, and any task folder back to that JSONL.

An instance (one JSON object per line) has instance_id, repo ("owner/name"), base_commit, patch, test_patch,
FAIL_TO_PASS, PASS_TO_PASS (lists, or the JSON strings SWE-bench's files hold) and problem_statement, and
optionally image. The repository at base_commit comes from a local clone under --repos (named
`owner__name`, as SWE-bench names its repositories, or `name`), read with `git archive` as data: regular
files only. A task folder is what `cwm reward swe --task` reads; `environment` (a `cwm env build` folder)
names where its tests run. A malformed instance, or one whose clone or commit is missing, is counted and
reported and the run goes on; a rerun skips instances already imported.
"""

import io
import json
import os
import re
import subprocess
import tarfile
from collections import Counter
from collections.abc import Callable

from cwm_common.errors import CwmError
from cwm_tasks.swe import REPO_DIR, SweTask, load_swe_tasks, task_folders

REQUIRED = (
    "instance_id",
    "repo",
    "base_commit",
    "patch",
    "test_patch",
    "FAIL_TO_PASS",
    "PASS_TO_PASS",
    "problem_statement",
)
TEST_LISTS = ("FAIL_TO_PASS", "PASS_TO_PASS")
REPORT_FILE = "report.json"


def read_instance(line: str, where: str) -> dict:
    """One instance, its test lists as lists; a CwmError naming `where` and the field when malformed."""
    try:
        instance = json.loads(line)
    except ValueError as e:
        raise CwmError(f"{where}: not JSON ({e})") from None
    if not isinstance(instance, dict):
        raise CwmError(f"{where}: an instance must be a JSON object")
    for key in REQUIRED:
        if key not in instance:
            raise CwmError(f"{where}: missing '{key}'")
    for key in TEST_LISTS:
        tests = instance[key]
        if isinstance(tests, str):
            try:
                tests = json.loads(tests)
            except ValueError:
                raise CwmError(f"{where}: '{key}' is a string that is not a JSON list") from None
        if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
            raise CwmError(f"{where}: '{key}' must be a list of test ids")
        instance[key] = tests
    for key in REQUIRED:
        if key not in TEST_LISTS and not isinstance(instance[key], str):
            raise CwmError(f"{where}: '{key}' must be a string")
    if not instance["FAIL_TO_PASS"]:
        raise CwmError(f"{where}: 'FAIL_TO_PASS' is empty")
    if "/" in instance["instance_id"] or instance["instance_id"] in ("", ".", ".."):
        raise CwmError(f"{where}: 'instance_id' {instance['instance_id']!r} cannot name a folder")
    if not re.fullmatch(r"[0-9a-f]{7,40}", instance["base_commit"]):
        raise CwmError(f"{where}: 'base_commit' {instance['base_commit']!r} is not a commit hash")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", instance["repo"]) or ".." in instance["repo"]:
        raise CwmError(f"{where}: 'repo' {instance['repo']!r} is not owner/name")
    return instance


def _clone(repos: str, repo: str) -> str:
    owner, _, name = repo.partition("/")
    for candidate in (f"{owner}__{name}", name or owner, os.path.join(owner, name)):
        path = os.path.join(repos, candidate)
        if os.path.isdir(path):
            return path
    raise CwmError(f"no clone of {repo} under {repos} (looked for {owner}__{name}, {name or owner})")


def _snapshot(clone: str, commit: str, dest: str) -> None:
    """The tree of `commit` into dest: regular files only (links and submodules are not carried)."""
    archive = subprocess.run(["git", "-C", clone, "archive", "--format=tar", commit], capture_output=True)
    if archive.returncode != 0:
        raise CwmError(f"{clone}: no commit {commit} ({archive.stderr.decode(errors='replace').strip()[-200:]})")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        for member in tar.getmembers():
            parts = [p for p in member.name.split("/") if p not in ("", ".")]
            if not member.isfile() or not parts or ".." in parts:
                continue
            target = os.path.join(dest, *parts)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            data = tar.extractfile(member)
            with open(target, "wb") as f:
                f.write(data.read() if data else b"")


def import_instances(
    instances: str, out: str, repos: str, environment: str | None = None, log: Callable[[str], None] = print
) -> dict:
    """Task folders under `out`, one per instance; returns the report (also out/report.json)."""
    os.makedirs(out, exist_ok=True)
    counts: Counter = Counter()
    failures: list[str] = []
    try:
        with open(instances, encoding="utf-8") as f:
            lines = f.readlines()
    except OSError as e:
        raise CwmError(f"{instances}: cannot read ({e.strerror})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{instances}:{number}"
        try:
            instance = read_instance(line, where)
            folder = os.path.join(out, instance["instance_id"])
            if os.path.isfile(os.path.join(folder, "task.json")):
                counts["already imported"] += 1
                continue
            try:
                _write_task(instance, folder, repos, environment)
            except CwmError as e:
                raise CwmError(f"{where}: {e}") from None
            counts["imported"] += 1
        except CwmError as e:
            counts["failed"] += 1
            failures.append(str(e))
            log(f"skipped: {e}")
    report = {"instances": instances, **dict(sorted(counts.items())), "failures": failures}
    with open(os.path.join(out, REPORT_FILE), "w") as f:
        json.dump(report, f, indent=1)
    log(f"{counts['imported']} imported, {counts['already imported']} already there, {counts['failed']} failed; {out}")
    return report


def _write_task(instance: dict, folder: str, repos: str, environment: str | None) -> None:
    partial = folder + ".partial"
    if os.path.exists(partial):
        subprocess.run(["rm", "-rf", "--", partial], check=True)
    _snapshot(_clone(repos, instance["repo"]), instance["base_commit"], os.path.join(partial, REPO_DIR))
    task = {
        "instance_id": instance["instance_id"],
        "problem_statement": instance["problem_statement"],
        "FAIL_TO_PASS": instance["FAIL_TO_PASS"],
        "PASS_TO_PASS": instance["PASS_TO_PASS"],
        "gold_patch": instance["patch"],
        "test_patch": instance["test_patch"],
        "repo": instance["repo"],
        "base_commit": instance["base_commit"],
        **({"image": instance["image"]} if isinstance(instance.get("image"), str) else {}),
        **({"environment": os.path.relpath(os.path.abspath(environment), folder)} if environment else {}),
    }
    with open(os.path.join(partial, "task.json"), "w") as f:
        json.dump(task, f, indent=1)
    os.replace(partial, folder)  # a crash leaves a .partial folder, never a half-written task


def export_tasks(tasks: str, out: str) -> int:
    """Every task folder under `tasks` as one SWE-bench-style instance line of `out`; returns how many."""
    lines = []
    load_swe_tasks(tasks)  # every folder checked first: a bad one is named before anything is written
    for name in task_folders(tasks):
        task = SweTask.load(os.path.join(tasks, name))
        with open(os.path.join(tasks, name, "task.json")) as f:
            meta = json.load(f)
        instance = {
            "instance_id": task.instance_id,
            "repo": meta.get("repo", f"local/{task.instance_id}"),
            "base_commit": meta.get("base_commit", ""),
            "patch": task.gold_patch,
            "test_patch": task.test_patch,
            "FAIL_TO_PASS": list(task.fail_to_pass),
            "PASS_TO_PASS": list(task.pass_to_pass),
            "problem_statement": task.problem_statement,
            **({"image": meta["image"]} if "image" in meta else {}),
        }
        lines.append(json.dumps(instance))
    with open(out, "w") as f:
        f.write("".join(line + "\n" for line in lines))
    return len(lines)
