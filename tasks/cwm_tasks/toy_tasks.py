"""Toy tasks for RL on CPU: echo (what does print(x) print?) and small sums, answered as a Python
expression that the sandbox evaluates."""

import random

from cwm_data import special_tokens as st
from cwm_data.chat_format import STOP_TOKENS
from cwm_data.special_tokens import special
from cwm_envs.sandbox import Sandbox
from cwm_tasks.reward_result import FAIL, PASS, RewardResult
from cwm_tasks.task import Prompt


def expression_reward(sandbox: Sandbox, completion: str, expected: int) -> RewardResult:
    """+1 when the completion's first line, evaluated as a Python expression in the sandbox, equals expected."""
    line = completion.strip().split("\n")[0][:200]
    if not line:
        return RewardResult(FAIL, "no_answer")
    result = sandbox.exec(["python3", "-c", "import sys; print(repr(eval(sys.stdin.read())))"], stdin=line, timeout=5)
    ok = result.ok and result.stdout.decode(errors="replace").strip() == repr(expected)
    return RewardResult(PASS if ok else FAIL, "passed" if ok else "failed", log=result.text()[-300:])


class EchoTask:
    """x = d; the model must say what print(x) prints (an expression equal to d). `echo_bit` (d in 0..1) is
    the CPU demo's task: a tiny model starts near -1 and learns it in ~50 steps."""

    multi_turn, needs_sandbox, stops = False, True, STOP_TOKENS

    def __init__(self, name: str = "echo", largest: int = 9):
        self.name, self.largest = name, largest

    def draw(self, rng: random.Random) -> Prompt:
        digit = rng.randint(0, self.largest)
        return Prompt(
            self.name,
            [special(st.BEGIN_OF_TEXT), f"x = {digit}\nprint(x)\n# prints: "],
            {"id": str(digit), "answer": digit},
        )

    def grade(self, sandbox, completion: str, meta: dict) -> RewardResult:
        return expression_reward(sandbox, completion, meta["answer"])


class ArithmeticTask:
    """a + b with small numbers; the answer is evaluated in the sandbox."""

    name, multi_turn, needs_sandbox, stops = "arithmetic", False, True, STOP_TOKENS

    def draw(self, rng: random.Random) -> Prompt:
        a, b = rng.randint(0, 20), rng.randint(0, 20)
        return Prompt(self.name, [special(st.BEGIN_OF_TEXT), f"{a} + {b} = "], {"id": f"{a}+{b}", "answer": a + b})

    def grade(self, sandbox, completion: str, meta: dict) -> RewardResult:
        return expression_reward(sandbox, completion, meta["answer"])
