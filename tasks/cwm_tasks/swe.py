"""SWE-style repository tasks: apply a submitted patch to a repo snapshot in a sandbox, restore the task's
tests and test configuration, add the hidden tests, run them, and grade by FAIL_TO_PASS and PASS_TO_PASS
(every listed test must pass), never by an exit code or by what the tests print. Optionally CWM's
patch-similarity reward. The agent task: CWM's tools in a sandbox holding the repository, the issue as the
prompt, the last submission graded.

A task folder holds `task.json` (instance_id, problem_statement, FAIL_TO_PASS, PASS_TO_PASS, test_patch,
gold_patch) and `repo/` (the snapshot the agent starts from: regular files only, text or binary).

What a submission may change, and what the grader puts back (the threat model is in WORKSPACE.md): test
files (test_*.py, *_test.py, anything under tests/ or test/, the files the test patch or the test ids name),
conftest.py files and test configuration (pytest.ini, tox.ini, setup.cfg, pyproject.toml) are restored from
the task; what can shadow the test runner or run at interpreter start (pytest.py, _pytest/, pluggy/, py.py,
sitecustomize.py, usercustomize.py, *.pth, package metadata folders), compiled files (__pycache__, *.pyc)
and symlinks are removed unless the task has them.
A patch that changes nothing else is rejected. The tests then run under pytest_runner.py, whose report the
code under test cannot write.
"""

import dataclasses
import difflib
import functools
import json
import os
import random
import time
from collections.abc import Callable

from cwm_common.errors import CwmError
from cwm_common.repo_paths import SWE_TASKS
from cwm_data.chat_format import generation_prompt, system_prompt
from cwm_envs.python_env import env_python
from cwm_envs.sandbox import WORKDIR, Sandbox, SandboxView
from cwm_tasks.agent_tools import AgentTools
from cwm_tasks.project_env import ENV_DIR, ENV_FILE, REPO_DIR, env_view
from cwm_tasks.pytest_run import put_runner, run_runner, runner_command
from cwm_tasks.reward_result import FAIL, PASS, RewardResult, TestOutcome
from cwm_tasks.task import Prompt

_TEST_CONFIG = {"conftest.py", "pytest.ini", ".pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml"}
_TEST_DIRS = {"tests", "test"}
_SHADOW_NAMES = {"pytest.py", "py.py", "sitecustomize.py", "usercustomize.py", "pytest", "_pytest", "pluggy"}
_KEYS = {
    "instance_id": str,
    "problem_statement": str,
    "FAIL_TO_PASS": list,
    "PASS_TO_PASS": list,
    "test_patch": str,
    "gold_patch": str,
}


def _read_task_json(folder: str) -> dict:
    path = os.path.join(folder, "task.json")
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise CwmError(f"{path}: {e}") from None
    if not isinstance(meta, dict):
        raise CwmError(f"{path}: must be a JSON object, not {type(meta).__name__}")
    for key, kind in _KEYS.items():
        if key not in meta:
            raise CwmError(f"{path}: missing '{key}'")
        if not isinstance(meta[key], kind):
            raise CwmError(f"{path}: '{key}' must be a {kind.__name__}, not {type(meta[key]).__name__}")
    for key in ("FAIL_TO_PASS", "PASS_TO_PASS"):
        for test in meta[key]:
            if not isinstance(test, str) or not test or os.path.isabs(test) or ".." in test.split("::")[0].split("/"):
                raise CwmError(f"{path}: '{key}' holds {test!r}, not a test id relative to the repository")
    if not meta["FAIL_TO_PASS"]:
        raise CwmError(f"{path}: 'FAIL_TO_PASS' is empty: a task needs a test the fix makes pass")
    return meta


def _environment(folder: str, meta: dict) -> str | None:
    """The task's environment folder (task.json's "environment", relative to the task folder), checked."""
    where = meta.get("environment")
    if where is None:
        return None
    path = os.path.join(folder, "task.json")
    if not isinstance(where, str):
        raise CwmError(f"{path}: 'environment' must be a str, not {type(where).__name__}")
    env = os.path.normpath(os.path.join(folder, where))
    if not os.path.isfile(os.path.join(env, ENV_FILE)):
        raise CwmError(f"{path}: 'environment' {where!r} is not a `cwm env build` folder (no {ENV_FILE} in {env})")
    return env


def _read_repo(repo: str) -> dict[str, bytes]:
    """path -> bytes of every file; a symlink or any other non-regular file is refused, never followed."""
    if not os.path.isdir(repo):
        raise CwmError(f"{repo}: the task has no repository folder")
    files = {}
    for root, dirs, names in os.walk(repo):
        for name in sorted(dirs + names):
            path = os.path.join(root, name)
            if os.path.islink(path):
                raise CwmError(f"{path}: a symlink in a task repository (links are refused, never followed)")
        for name in names:
            path = os.path.join(root, name)
            if not os.path.isfile(path):
                raise CwmError(f"{path}: not a regular file (task repositories hold regular files only)")
            with open(path, "rb") as f:
                files[os.path.relpath(path, repo)] = f.read()
    return files


@dataclasses.dataclass(frozen=True)
class SweTask:
    instance_id: str
    problem_statement: str
    fail_to_pass: tuple[str, ...]
    pass_to_pass: tuple[str, ...]
    test_patch: str
    gold_patch: str
    files: dict  # path -> bytes of the repo snapshot
    environment: str | None = None  # a `cwm env build` folder whose environment the tests run in
    repo: str | None = None  # "owner/name", for tasks imported from SWE-bench-style instances

    @property
    def python(self) -> str:
        """The interpreter the tests run with: the environment's, or the sandbox system's."""
        return env_python() if self.environment else "python3"

    def sandbox_view(self) -> SandboxView:
        """What a sandbox for this task must show: its environment, if it has one."""
        return env_view(os.path.join(self.environment, ENV_DIR)) if self.environment else SandboxView()

    @classmethod
    def load(cls, folder: str) -> "SweTask":
        meta = _read_task_json(folder)
        return cls(
            meta["instance_id"],
            meta["problem_statement"],
            tuple(meta["FAIL_TO_PASS"]),
            tuple(meta["PASS_TO_PASS"]),
            meta["test_patch"],
            meta["gold_patch"],
            _read_repo(os.path.join(folder, REPO_DIR)),
            _environment(folder, meta),
            meta.get("repo") if isinstance(meta.get("repo"), str) else None,
        )

    def setup(self, sandbox: Sandbox):
        """Puts the snapshot at /work/repo (what the agent works on)."""
        for path, data in self.files.items():
            sandbox.put_file(f"{REPO_DIR}/{path}", data)

    @functools.cached_property
    def test_files(self) -> list[str]:
        return sorted({t.split("::")[0] for t in self.fail_to_pass + self.pass_to_pass})

    @functools.cached_property
    def _test_patch_files(self) -> set[str]:
        return patched_files(self.test_patch)

    def protected(self, path: str) -> bool:
        """Whether `path` (relative to the repository) is a test, test configuration or test-runner file: the
        task's version is what runs."""
        parts = path.split("/")
        name = parts[-1]
        return (
            name in _TEST_CONFIG
            or (name.startswith("test_") and name.endswith(".py"))
            or name.endswith("_test.py")
            or bool(_TEST_DIRS & set(parts[:-1]))
            or path in self.test_files
            or path in self._test_patch_files
        )


def shadows_the_runner(path: str) -> bool:
    """Whether `path` can stand in for the test runner or run at its start: a module or package of pytest's
    names, interpreter start hooks, compiled files, or package metadata (a `pytest11` entry point in a
    dist-info folder on sys.path is a plugin pytest loads by itself)."""
    parts = path.split("/")
    return (
        parts[0] in _SHADOW_NAMES
        or parts[-1] in _SHADOW_NAMES
        or parts[-1].endswith((".pth", ".pyc"))
        or "__pycache__" in parts
        or parts[0].endswith((".dist-info", ".egg-info"))
    )


def shipped_swe_tasks() -> list[SweTask]:
    return load_swe_tasks(SWE_TASKS)


def task_folders(folder: str) -> list[str]:
    """The names of the task folders in `folder` (a generator's unfinished `.partial` folders left out)."""
    return sorted(
        n
        for n in os.listdir(folder)
        if os.path.isfile(os.path.join(folder, n, "task.json")) and not n.endswith(".partial")
    )


def load_swe_tasks(folder: str) -> list[SweTask]:
    """Every task folder (a folder holding task.json) directly inside `folder`."""
    if not os.path.isdir(folder):
        raise CwmError(f"{folder}: no such folder of SWE tasks")
    names = task_folders(folder)
    if not names:
        raise CwmError(f"{folder}: holds no task folders (folders with a task.json)")
    return [SweTask.load(os.path.join(folder, name)) for name in names]


def patched_files(patch: str) -> set[str]:
    """The repository paths a unified diff creates, changes, renames or deletes."""
    found = set()
    for line in patch.splitlines():
        if line.startswith(("--- ", "+++ ")):
            path = line[4:].split("\t")[0].strip()
            if path != "/dev/null":
                found.add(path[2:] if path.startswith(("a/", "b/")) else path)
        elif line.startswith(("rename from ", "rename to ", "copy from ", "copy to ")):
            found.add(line.split(" ", 2)[2].strip())
        elif line.startswith("diff --git "):
            found.update(p[2:] for p in line.split()[2:4] if p.startswith(("a/", "b/")))
    return found


_TEST_PATCH_FAILED = 97  # the exit status of the grading command when the test patch does not apply


def _apply_and_list(sandbox: Sandbox, patch: str) -> tuple[bool, str, list[tuple[str, str]]]:
    """Applies the submission; (applied, log, [(kind, path)] of what the repository then holds), in one
    command."""
    sandbox.put_file("submission.diff", patch)
    result = sandbox.exec(
        f"cd {REPO_DIR} && git apply --whitespace=nowarn ../submission.diff >&2 && "
        "find . -mindepth 1 -printf '%y %P\\0'",
        timeout=60,
    )
    listing = result.stdout.decode(errors="surrogateescape").split("\0")
    entries = [(kind, path) for kind, _, path in (e.partition(" ") for e in listing if e)]
    return result.ok, result.stderr.decode(errors="replace"), entries


def restore_tests(sandbox: Sandbox, task: SweTask, entries: list[tuple[str, str]]):
    """Puts the task's tests and test configuration back over the repository holding `entries`, and removes
    what could shadow the runner, symlinks, anything else that is not a regular file or a directory, and
    test files the task does not have."""
    remove = [
        path
        for kind, path in entries
        if kind not in ("f", "d")
        or (shadows_the_runner(path) and path not in task.files)
        or (kind == "f" and task.protected(path) and path not in task.files)
    ]
    if remove:
        sandbox.exec(["rm", "-rf", "--", *(f"{REPO_DIR}/{p}" for p in remove)], timeout=60)
    for path, data in task.files.items():
        if task.protected(path):
            sandbox.put_file(f"{REPO_DIR}/{path}", data)


def grade_swe(
    sandbox: Sandbox,
    task: SweTask,
    patch: str,
    timeout: float = 300.0,
    setup: bool = True,
    log_parser: Callable[[str], dict[str, str]] | None = None,
) -> RewardResult:
    """+1 iff the patch applies, changes more than tests and test configuration, and every FAIL_TO_PASS and
    PASS_TO_PASS test passes in a run that reached its end untampered; else -1 with why. Each test's outcome
    is the runner's report, or with `log_parser` what it reads in the run's pytest log (SWE-bench's way),
    a pass there confirmed by the report."""
    start = time.perf_counter()
    if not patch.strip():
        return RewardResult(FAIL, "empty_patch", [], 0.0, "the submission is empty")
    touched = patched_files(patch)
    if touched and all(task.protected(p) or shadows_the_runner(p) for p in touched):
        return RewardResult(
            FAIL, "tests_only", [], 0.0, f"the patch changes only tests or test configuration: {sorted(touched)}"
        )
    if setup:
        task.setup(sandbox)
    applied, log, entries = _apply_and_list(sandbox, patch)
    if not applied:
        return RewardResult(FAIL, "patch_failed", [], time.perf_counter() - start, log[-4000:])
    try:
        restore_tests(sandbox, task, entries)
    except CwmError as e:
        return RewardResult(
            FAIL, "tests_tampered", [], time.perf_counter() - start, f"could not restore the tests: {e}"
        )
    sandbox.put_file("tests.diff", task.test_patch)
    put_runner(sandbox)
    # Mutate-fix tasks have their tests in the repository already: no test patch to apply.
    apply_tests = (
        f"(cd {REPO_DIR} && git apply --whitespace=nowarn ../tests.diff >&2) || exit {_TEST_PATCH_FAILED}; "
        if task.test_patch.strip()
        else ""
    )
    report, run = run_runner(
        sandbox, f"{apply_tests}exec {runner_command(REPO_DIR, task.test_files, task.python)}", timeout
    )
    if run.exit_code == _TEST_PATCH_FAILED:
        return RewardResult(FAIL, "test_patch_failed", [], time.perf_counter() - start, run.text()[-4000:])
    log = run.stderr.decode(errors="replace")[-4000:]
    seconds = time.perf_counter() - start
    if report is None:
        status = "timeout" if run.timed_out else "runner_failed"
        return RewardResult(FAIL, status, [], seconds, log)
    seen = report.outcomes if log_parser is None else _parsed(log_parser, run.stderr, report.outcomes)
    outcomes = [
        TestOutcome(test, seen.get(test) == "passed", f"{kind}: {seen.get(test, 'not run')}")
        for kind, tests in (("FAIL_TO_PASS", task.fail_to_pass), ("PASS_TO_PASS", task.pass_to_pass))
        for test in tests
    ]
    if report.tampered:
        return RewardResult(FAIL, "tampered", outcomes, seconds, f"the test run was tampered with: {report.tampered}")
    if not report.finished:
        why = "the test run did not reach its end (it ran out of time, exited early or was killed)"
        return RewardResult(FAIL, "timeout" if run.timed_out else "incomplete", outcomes, seconds, f"{why}\n{log}")
    ok = all(o.passed for o in outcomes)
    return RewardResult(PASS if ok else FAIL, "passed" if ok else "failed", outcomes, seconds, log)


def _parsed(log_parser, log: bytes, reported: dict[str, str]) -> dict[str, str]:
    """Each test's outcome as the parser reads the pytest log. The tested code can write that log too, so a
    test it reads as passed counts only when the runner's report agrees."""
    parsed = log_parser(log.decode(errors="replace"))
    return {
        test: outcome if outcome != "passed" or reported.get(test) == "passed" else "passed in the log only"
        for test, outcome in parsed.items()
    }


def _files_of(patch: str) -> dict[str, str]:
    files, current = {}, None
    for line in patch.splitlines():
        if line.startswith("diff --git"):
            current = line.split(" b/")[-1]
            files[current] = ""
        elif current is not None:
            files[current] += line + "\n"
    return files


def patch_similarity(predicted: str, oracle: str) -> float:
    """Mean over the oracle's files of difflib similarity with the predicted patch's hunk for that file."""
    want, got = _files_of(oracle), _files_of(predicted)
    if not want:
        return 0.0
    return sum(difflib.SequenceMatcher(None, got.get(f, ""), text).ratio() for f, text in want.items()) / len(want)


def similarity_reward(
    result: RewardResult, predicted: str, oracle: str, threshold: float = 0.5, scale: float = 2.0
) -> float:
    """CWM's shaped SWE reward: pass -> -1 + scale; a failing patch similar enough to the oracle ->
    -1 + threshold x scale; otherwise -1."""
    if result.passed:
        return -1.0 + scale
    return -1.0 + threshold * scale if patch_similarity(predicted, oracle) >= threshold else -1.0


# The release's agent environment (SYSTEM_UBUNTU, with the edit and create tools) and its issue-solving user
# prompt (USER_ISSUE_SOLVING), word for word.
SWE_ENVIRONMENT = (
    "You are working in a linux container. The container session is persistent but will restart when "
    "encountering errors or after a {session_timeout} session timeout in each turn. You are also "
    "constrained by a {context_size} total context window limit. You can interact with the container "
    "through the following tool interface for at most {max_turns} turns. Here are the specifications:\n"
    "\n"
    "<tool: bash>\n"
    "[command(s)]\n"
    "</tool>\n"
    "Executes bash command(s) [command(s)] in the current session. [command(s)] can be any "
    "non-interactive bash command(s), either single or multi-line.\n"
    "\n"
    "<tool: edit>\n"
    "[path]\n"
    "<<<<<<< SEARCH\n"
    "[search_lines]\n"
    "=======\n"
    "[replacement_lines]\n"
    ">>>>>>> REPLACE\n"
    "</tool>\n"
    "Replaces [search_lines] from [path] with [replacement_lines], where [path] must exist and "
    "[search_lines] must uniquely and exactly match one or more consecutive lines from the original "
    "file, including indentations and whitespaces.\n"
    "\n"
    "<tool: create>\n"
    "[path]\n"
    "[content]\n"
    "</tool>\n"
    "Creates a new file at [path] with [content], where [path] must not exist, but its parent directory "
    "must exist.\n"
    "\n"
    "<tool: submit>\n"
    "[result]\n"
    "</tool>\n"
    "Marks [result] as your final submission. The meaning and format of [result] depends on the specific "
    "user request.\n"
    "\n"
    "REQUIREMENTS:\n"
    "* You cannot invoke more than one tool in each step.\n"
    "* You must invoke exactly one tool in each step before any <tool: submit> call.\n"
    "* After successful submission, provide a final response if the request is resolved, otherwise "
    "continue iterating. You cannot provide a final response before invoking <tool: submit>."
)

SWE_USER = (
    "Solve the following issue by implementing the necessary code changes and submitting a patch file:\n"
    "\n"
    "<issue_description>\n"
    "{issue}\n"
    "</issue_description>\n"
    "\n"
    "The [result] argument of <tool: submit> should be the path to a patch file that resolves the issue. "
    "This file must be accessible from the current working directory and should contain the end-to-end "
    "code changes in git diff format. You can refine and submit your patch multiple times as needed to "
    "ensure correctness.\n"
    "\n"
    "Once you've submitted at least once and are confident in your solution, provide a final response "
    "summarizing your work using the following markdown template as a guide. Feel free to adjust the "
    "sections as necessary to fit the specific issue and solution:\n"
    "\n"
    "```markdown\n"
    "## Issue Summary\n"
    "\n"
    "Brief description of the issue (bug/feature/enhancement), affected component, and expected outcome.\n"
    "\n"
    "## Investigation and Reproduction\n"
    "\n"
    "Steps taken to understand and reproduce the issue: commands executed, test cases run, error "
    "messages, debugging approach, and root cause analysis. For features, describe requirement analysis "
    "and codebase exploration.\n"
    "\n"
    "## Solution and Code Changes\n"
    "\n"
    "High-level approach and rationale for the chosen solution. Specific modifications by "
    "file/component, including new functions, classes, or architectural decisions. Explain how changes "
    "work together if multiple files are involved.\n"
    "\n"
    "## Testing and Verification\n"
    "\n"
    "Description of how you ensure the patch fully resolves the issue, including new tests added (or "
    "test changes made) to verify correctness, how you ran existing tests to prevent regressions, and "
    "how comprehensive your testing process is (e.g., what edge cases you covered, how you validated "
    "correctness across different scenarios).\n"
    "```\n"
    "\n"
    "Your primary objective is to ensure patch correctness above all else - thoroughly explore the "
    "codebase, think hard, and leverage significant execution to verify correctness by writing "
    "comprehensive tests to validate your solution and running existing tests to prevent regressions. "
    "Only submit when you are genuinely confident in your patch's correctness.\n"
    "\n"
    "I've uploaded the corresponding code repository at {repo_root} and installed all the necessary "
    "dependencies. Now, the bash session has started, with the current working directory set to the repo "
    "root."
)


REPO_ROOT = f"{WORKDIR}/{REPO_DIR}"


@dataclasses.dataclass(frozen=True)
class AgentLimits:
    """What the agent is told about its budget (the release's SWERLConfig: 131072, 128, 120 s)."""

    context_size: int = 131072
    max_turns: int = 128
    session_timeout_s: float = 120.0


def swe_prompt(task: SweTask, limits: AgentLimits = AgentLimits()) -> list[str]:
    environment = SWE_ENVIRONMENT.format(
        session_timeout=f"{int(limits.session_timeout_s)}-second",
        context_size=limits.context_size,
        max_turns=limits.max_turns,
    )
    user = SWE_USER.format(issue=task.problem_statement, repo_root=REPO_ROOT)
    return generation_prompt([("system", system_prompt(environment)), ("user", user)], reasoning=True)


def agent_workspace(sandbox: Sandbox, limits: AgentLimits) -> AgentTools:
    """The repository at /work/repo made a git checkout of its snapshot (as the release's task images are, so
    `git diff` gives the agent its patch), and the agent's tools working in it."""
    made = sandbox.exec(
        f"cd {REPO_DIR} && git init -q && git add -A && "
        "git -c user.name=cwm -c user.email=cwm@localhost commit -q -m snapshot",
        timeout=60,
    )
    if not made.ok:
        raise RuntimeError(f"could not make /work/{REPO_DIR} a git checkout: {made.text()[-300:]}")
    return AgentTools(sandbox, REPO_ROOT, limits.session_timeout_s)


class SweAgentTask:
    """Multi-turn: the agent fixes an issue in a repo with CWM's tools; its last submission is graded by
    FAIL_TO_PASS / PASS_TO_PASS tests."""

    name, multi_turn = "swe", True

    def __init__(self, tasks: list[SweTask] | None = None, limits: AgentLimits = AgentLimits(), folder: str = ""):
        """`folder`: task folders to draw from (e.g. `cwm gen-tasks` output); the shipped tasks by default."""
        self.tasks = {t.instance_id: t for t in (tasks or (load_swe_tasks(folder) if folder else shipped_swe_tasks()))}
        self.limits = limits

    def sandbox_view(self) -> SandboxView:
        """What every sandbox of the family shows: the environment its tasks run in (one per family, mounted
        where it was built, so its scripts run)."""
        environments = sorted({t.environment for t in self.tasks.values() if t.environment})
        if len(environments) > 1:
            raise CwmError(
                f"the swe tasks run in {len(environments)} environments ({', '.join(environments)}); one per run"
            )
        return self.tasks[min(self.tasks)].sandbox_view() if environments else SandboxView()

    def draw(self, rng: random.Random) -> Prompt:
        task = self.tasks[rng.choice(sorted(self.tasks))]
        return Prompt(self.name, swe_prompt(task, self.limits), {"id": task.instance_id})

    def setup(self, sandbox: Sandbox, meta: dict) -> AgentTools:
        """The repository in the sandbox, and the agent's tools working in it."""
        self.tasks[meta["id"]].setup(sandbox)
        return agent_workspace(sandbox, self.limits)

    def grade(self, sandbox: Sandbox, submission: str | None, meta: dict) -> RewardResult:
        if not submission:
            return RewardResult(FAIL, "no_submission")
        sandbox.reset()
        return grade_swe(sandbox, self.tasks[meta["id"]], submission)
