"""SWE-style repository tasks: apply a submitted patch to a repo snapshot in a sandbox, add the hidden
tests, run them, and grade by FAIL_TO_PASS and PASS_TO_PASS (every listed test must pass), never by an
exit code. Optionally CWM's patch-similarity reward. The agent task: CWM's tools in a sandbox holding the
repository, the issue as the prompt, the last submission graded.

A task folder holds `task.json` (instance_id, problem_statement, FAIL_TO_PASS, PASS_TO_PASS, test_patch,
gold_patch) and `repo/` (the snapshot the agent starts from).
"""

import dataclasses
import difflib
import json
import os
import random
import re
import time

from cwm_common.errors import CwmError
from cwm_common.repo_paths import SWE_TASKS
from cwm_data.chat_format import REASONING_SYSTEM_PROMPT, generation_prompt
from cwm_envs.sandbox import Sandbox
from cwm_tasks.reward_result import FAIL, PASS, RewardResult, TestOutcome
from cwm_tasks.task import Prompt

REPO_DIR = "repo"
_RESULT_LINE = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (\S+)")


@dataclasses.dataclass(frozen=True)
class SweTask:
    instance_id: str
    problem_statement: str
    fail_to_pass: tuple[str, ...]
    pass_to_pass: tuple[str, ...]
    test_patch: str
    gold_patch: str
    files: dict  # path -> text of the repo snapshot

    @classmethod
    def load(cls, folder: str) -> "SweTask":
        try:
            with open(os.path.join(folder, "task.json")) as f:
                meta = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise CwmError(f"{folder}/task.json: {e}") from None
        repo = os.path.join(folder, REPO_DIR)
        files = {}
        for root, _, names in os.walk(repo):
            for name in names:
                path = os.path.join(root, name)
                with open(path) as f:
                    files[os.path.relpath(path, repo)] = f.read()
        return cls(
            meta["instance_id"],
            meta["problem_statement"],
            tuple(meta["FAIL_TO_PASS"]),
            tuple(meta["PASS_TO_PASS"]),
            meta["test_patch"],
            meta["gold_patch"],
            files,
        )

    def setup(self, sandbox: Sandbox):
        """Puts the snapshot at /work/repo (what the agent works on)."""
        for path, text in self.files.items():
            sandbox.put_file(f"{REPO_DIR}/{path}", text)


def shipped_swe_tasks() -> list[SweTask]:
    return [SweTask.load(os.path.join(SWE_TASKS, name)) for name in sorted(os.listdir(SWE_TASKS))]


def _apply(sandbox: Sandbox, patch: str, name: str) -> tuple[bool, str]:
    sandbox.put_file(name, patch)
    result = sandbox.exec(f"cd {REPO_DIR} && git apply --whitespace=nowarn ../{name}", timeout=60)
    return result.ok, result.text()


def grade_swe(sandbox: Sandbox, task: SweTask, patch: str, timeout: float = 300.0, setup: bool = True) -> RewardResult:
    """+1 iff the patch applies and every FAIL_TO_PASS and PASS_TO_PASS test passes; else -1 with why."""
    start = time.perf_counter()
    if not patch.strip():
        return RewardResult(FAIL, "empty_patch", [], 0.0, "the submission is empty")
    if setup:
        task.setup(sandbox)
    applied, log = _apply(sandbox, patch, "submission.diff")
    if not applied:
        return RewardResult(FAIL, "patch_failed", [], time.perf_counter() - start, log[-4000:])
    applied, log = _apply(sandbox, task.test_patch, "tests.diff")
    if not applied:
        return RewardResult(FAIL, "test_patch_failed", [], time.perf_counter() - start, log[-4000:])
    test_files = sorted({t.split("::")[0] for t in task.fail_to_pass + task.pass_to_pass})
    run = sandbox.exec(
        ["bash", "-c", f"cd {REPO_DIR} && python3 -m pytest -rA -q -p no:cacheprovider " + " ".join(test_files)],
        timeout=timeout,
    )
    seen = {}
    for line in run.stdout.decode(errors="replace").splitlines():
        match = _RESULT_LINE.match(line)
        if match:
            seen[match.group(2)] = match.group(1)
    outcomes = [
        TestOutcome(test, seen.get(test) == "PASSED", f"{kind}: {seen.get(test, 'not run')}")
        for kind, tests in (("FAIL_TO_PASS", task.fail_to_pass), ("PASS_TO_PASS", task.pass_to_pass))
        for test in tests
    ]
    seconds = time.perf_counter() - start
    if run.timed_out:
        return RewardResult(FAIL, "timeout", outcomes, seconds, run.text()[-4000:])
    ok = all(o.passed for o in outcomes)
    return RewardResult(PASS if ok else FAIL, "passed" if ok else "failed", outcomes, seconds, run.text()[-4000:])


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


SWE_SYSTEM = (
    REASONING_SYSTEM_PROMPT + "\n\n# Environment\nYou are in a Linux sandbox; the repository is at "
    "/work/repo. Call exactly one tool per turn as <tool: NAME>, a newline, its input, a newline, "
    "</tool>. Tools: bash (a command), edit (a path, then <<<<<<< SEARCH / ======= / >>>>>>> REPLACE), "
    "create (a path, then the content), submit (the path of a patch file starting with 'diff'). Submit "
    "before your final answer."
)


def swe_prompt(task: SweTask) -> list[str]:
    user = (
        f"<issue_description>\n{task.problem_statement}\n</issue_description>\n"
        f"Fix the issue in /work/repo, submit a git diff patch, then write a short report."
    )
    return generation_prompt([("system", SWE_SYSTEM), ("user", user)], reasoning=True)


class SweAgentTask:
    """Multi-turn: the agent fixes an issue in a repo with CWM's tools; its last submission is graded by
    FAIL_TO_PASS / PASS_TO_PASS tests."""

    name, multi_turn = "swe", True

    def __init__(self, tasks: list[SweTask] | None = None):
        self.tasks = {t.instance_id: t for t in (tasks or shipped_swe_tasks())}

    def draw(self, rng: random.Random) -> Prompt:
        task = self.tasks[rng.choice(sorted(self.tasks))]
        return Prompt(self.name, swe_prompt(task), {"id": task.instance_id})

    def setup(self, sandbox: Sandbox, meta: dict):
        self.tasks[meta["id"]].setup(sandbox)

    def grade(self, sandbox: Sandbox, submission: str | None, meta: dict) -> RewardResult:
        if not submission:
            return RewardResult(FAIL, "no_submission")
        sandbox.reset()
        return grade_swe(sandbox, self.tasks[meta["id"]], submission)
