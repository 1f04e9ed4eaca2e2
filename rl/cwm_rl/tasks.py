"""RL tasks: prompts and verifiable rewards computed in sandboxes.

Single-turn tasks (`score` grades one completion) and the multi-turn SWE agent task (the rollout runs its
tool loop; `grade` scores the final submission). A task mixture draws tasks by weight.
"""

import dataclasses
import json
import os
import random

from cwm_data import special_tokens as st
from cwm_data.special_tokens import special
from cwm_envs.sandbox import Sandbox
from cwm_envs.tasks.humaneval import humaneval_tasks
from cwm_envs.tasks.math_answer import grade_math
from cwm_envs.tasks.python_tests import grade_function
from cwm_envs.tasks.reward_result import FAIL, PASS, RewardResult
from cwm_envs.tasks.swe_tasks import grade_swe, shipped_swe_tasks
from cwm_jax.evals.math_eval import math_prompt

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass
class Prompt:
    task: str
    pieces: list[str]  # token-text pieces of the prompt
    meta: dict


def _expression_reward(sandbox: Sandbox, completion: str, expected: int) -> RewardResult:
    """+1 when the completion's first line, evaluated as a Python expression in the sandbox, equals expected."""
    line = completion.strip().split("\n")[0][:200]
    if not line:
        return RewardResult(FAIL, "no_answer")
    result = sandbox.exec(["python3", "-c", "import sys; print(repr(eval(sys.stdin.read())))"], stdin=line,
                          timeout=5)
    ok = result.ok and result.stdout.decode(errors="replace").strip() == repr(expected)
    return RewardResult(PASS if ok else FAIL, "passed" if ok else "failed", log=result.text()[-300:])


class EchoTask:
    """x = d; the model must say what print(x) prints (an expression equal to d). `echo_bit` (d in 0..1) is
    the CPU demo's task: a tiny model starts near -1 and learns it in ~50 steps."""

    multi_turn = False

    def __init__(self, name: str = "echo", largest: int = 9):
        self.name, self.largest = name, largest

    def prompt(self, rng: random.Random) -> Prompt:
        digit = rng.randint(0, self.largest)
        return Prompt(self.name, [special(st.BEGIN_OF_TEXT), f"x = {digit}\nprint(x)\n# prints: "], {"answer": digit})

    def score(self, sandbox: Sandbox, completion: str, meta: dict) -> RewardResult:
        return _expression_reward(sandbox, completion, meta["answer"])


class ArithmeticTask:
    """a + b with small numbers; the answer is evaluated in the sandbox."""

    name, multi_turn = "arithmetic", False

    def prompt(self, rng: random.Random) -> Prompt:
        a, b = rng.randint(0, 20), rng.randint(0, 20)
        return Prompt(self.name, [special(st.BEGIN_OF_TEXT), f"{a} + {b} = "], {"answer": a + b})

    def score(self, sandbox: Sandbox, completion: str, meta: dict) -> RewardResult:
        return _expression_reward(sandbox, completion, meta["answer"])


class MathTask:
    """GSM8K-style problems in CWM's reasoning chat format, graded on the \\boxed{} answer."""

    name, multi_turn = "math", False

    def __init__(self, path: str = os.path.join(REPO, "data/benchmarks/math/gsm8k_test.jsonl")):
        with open(path) as f:
            rows = [json.loads(line) for line in f]
        self.problems = [(r.get("problem", r.get("question")), str(r["answer"]).split("####")[-1].strip()
                          .replace(",", "")) for r in rows]

    def prompt(self, rng: random.Random) -> Prompt:
        problem, answer = rng.choice(self.problems)
        return Prompt(self.name, math_prompt(problem), {"answer": answer})

    def score(self, sandbox: Sandbox, completion: str, meta: dict) -> RewardResult:
        return grade_math(completion, meta["answer"])


class CodeTask:
    """HumanEval functions: the completion continues the prompt; graded by the unit tests in the sandbox."""

    name, multi_turn = "code", False

    def __init__(self):
        self.tasks = humaneval_tasks()

    def prompt(self, rng: random.Random) -> Prompt:
        task = rng.choice(self.tasks)
        return Prompt(self.name, [special(st.BEGIN_OF_TEXT), task.prompt], {"task_id": task.task_id})

    def score(self, sandbox: Sandbox, completion: str, meta: dict) -> RewardResult:
        from cwm_jax.evals.humaneval_eval import cut_completion

        task = next(t for t in self.tasks if t.task_id == meta["task_id"])
        return grade_function(sandbox, task.program(cut_completion(completion)), task.tests, task.entry_point)


SWE_SYSTEM = ("You are a helpful AI assistant. You always reason before responding, using the following format:\n"
              "<think>\nyour internal reasoning\n</think>\nyour external response\n\n# Environment\n"
              "You are in a Linux sandbox; the repository is at /work/repo. Call exactly one tool per turn as "
              "<tool: NAME>, a newline, its input, a newline, </tool>. Tools: bash (a command), edit (a path, "
              "then <<<<<<< SEARCH / ======= / >>>>>>> REPLACE), create (a path, then the content), submit (the "
              "path of a patch file starting with 'diff'). Submit before your final answer.")


class SweAgentTask:
    """Multi-turn: the agent fixes an issue in a repo with CWM's tools; its last submission is graded by
    FAIL_TO_PASS / PASS_TO_PASS tests."""

    name, multi_turn = "swe", True

    def __init__(self):
        self.tasks = {t.instance_id: t for t in shipped_swe_tasks()}

    def prompt(self, rng: random.Random) -> Prompt:
        task = self.tasks[rng.choice(sorted(self.tasks))]

        def turn(role, body):
            return [special(st.START_HEADER), role, special(st.END_HEADER), "\n\n", body, special(st.EOT)]

        user = (f"<issue_description>\n{task.problem_statement}\n</issue_description>\n"
                f"Fix the issue in /work/repo, submit a git diff patch, then write a short report.")
        pieces = ([special(st.BEGIN_OF_TEXT)] + turn("system", SWE_SYSTEM) + turn("user", user)
                  + [special(st.START_HEADER), "assistant", special(st.END_HEADER), "\n\n", "<think>\n"])
        return Prompt(self.name, pieces, {"instance_id": task.instance_id})

    def setup(self, sandbox: Sandbox, meta: dict):
        self.tasks[meta["instance_id"]].setup(sandbox)

    def grade(self, sandbox: Sandbox, submission: str | None, meta: dict) -> RewardResult:
        if not submission:
            return RewardResult(FAIL, "no_submission")
        sandbox.reset()
        return grade_swe(sandbox, self.tasks[meta["instance_id"]], submission)


TASKS = {"echo": EchoTask, "echo_bit": lambda: EchoTask("echo_bit", 1), "arithmetic": ArithmeticTask,
         "math": MathTask, "code": CodeTask, "swe": SweAgentTask}


class TaskMixture:
    """Draws (task, prompt) by weight; batch b's prompts depend only on (seed, b), so a resumed or an
    asynchronous run sees the same prompts at the same step as a synchronous one."""

    def __init__(self, weights: dict[str, float], seed: int):
        from cwm_common.errors import CwmError

        unknown = sorted(set(weights) - set(TASKS))
        if unknown:
            raise CwmError(f"config field 'rl.tasks': unknown task '{unknown[0]}'; tasks: {', '.join(TASKS)}")
        if not any(w > 0 for w in weights.values()):
            raise CwmError("config field 'rl.tasks': every task weight is 0")
        self.tasks = {name: TASKS[name]() for name, w in weights.items() if w > 0}
        self.names = sorted(self.tasks)
        self.weights = [weights[n] for n in self.names]
        self.seed = seed

    def batch(self, index: int, count: int) -> list[Prompt]:
        prompts = []
        for position in range(index * count, (index + 1) * count):
            rng = random.Random(f"{self.seed}:{position}")
            prompts.append(self.tasks[rng.choices(self.names, self.weights)[0]].prompt(rng))
        return prompts
