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
from cwm_data.chat_format import generation_prompt, system_prompt
from cwm_envs.sandbox import WORKDIR, Sandbox
from cwm_tasks.agent_tools import AgentTools
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

    def __init__(self, tasks: list[SweTask] | None = None, limits: AgentLimits = AgentLimits()):
        self.tasks = {t.instance_id: t for t in (tasks or shipped_swe_tasks())}
        self.limits = limits

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
