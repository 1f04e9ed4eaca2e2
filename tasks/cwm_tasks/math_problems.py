"""Math problems (AIME 2024, AMC 2023, GSM8K test) in CWM's reasoning chat format, graded on the last
\\boxed{...} answer, checked for equivalence with Math-Verify (sympy), not by string equality, in a worker
process with a deadline (math_verify_pool.py)."""

import os
import random
import time

from cwm_common.jsonl import read_jsonl
from cwm_common.repo_paths import BENCHMARKS
from cwm_data.chat_format import REASONING_SYSTEM_PROMPT, STOP_TOKENS, generation_prompt
from cwm_tasks.math_verify_pool import DEADLINE_S, compare_in_worker
from cwm_tasks.reward_result import FAIL, PASS, RewardResult, TestOutcome
from cwm_tasks.task import Prompt

MATH_SETS = ("aime24", "amc23", "gsm8k_test")


def load_math_problems(dataset: str = "gsm8k_test") -> list[dict]:
    """[{"id", "problem", "answer"}] of a shipped set (GSM8K keeps its answer after "####")."""
    rows = read_jsonl(os.path.join(BENCHMARKS, "math", f"{dataset}.jsonl"))
    return [
        {
            "id": r.get("id", r.get("idx", i)),
            "problem": r.get("problem", r.get("question")),
            "answer": str(r["answer"]).split("####")[-1].strip().replace(",", ""),
        }
        for i, r in enumerate(rows)
    ]


def math_prompt(problem: str) -> list[str]:
    """The reasoning system prompt, the problem as the user turn; the assistant starts with "<think>\\n"."""
    return generation_prompt(
        [("system", REASONING_SYSTEM_PROMPT), ("user", f"{problem}\nWrap your answer in $\\boxed{{}}$.")],
        reasoning=True,
    )


def extract_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} (braces balanced), or None."""
    start = text.rfind("\\boxed")
    while start >= 0:
        i = text.find("{", start)
        if i >= 0 and text[start + len("\\boxed") : i].strip() == "":
            depth = 0
            for j in range(i, len(text)):
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                if depth == 0:
                    return text[i + 1 : j]
        start = text.rfind("\\boxed", 0, start)
    return None


def grade_math(response: str, reference: str) -> RewardResult:
    """+1 when the boxed answer equals the reference in value, else -1."""
    start = time.perf_counter()
    answer = extract_boxed(response)
    if answer is None:
        return RewardResult(FAIL, "no_answer", [], time.perf_counter() - start, "no \\boxed{} answer")
    reply = compare_in_worker(answer, reference)
    if reply is None:
        return RewardResult(
            FAIL,
            "timeout",
            [TestOutcome("answer", False, f"answer {answer[:200]!r}: no verdict in {DEADLINE_S:g} s")],
            time.perf_counter() - start,
        )
    equal = reply.get("equal", False)
    log = reply.get("error", "")
    outcome = TestOutcome("answer", equal, f"answer {answer!r}, reference {reference!r}")
    return RewardResult(
        PASS if equal else FAIL, "passed" if equal else "failed", [outcome], time.perf_counter() - start, log
    )


class MathTask:
    name, multi_turn, needs_sandbox, stops = "math", False, False, STOP_TOKENS

    def __init__(self, dataset: str = "gsm8k_test", problems: list[dict] | None = None):
        """A shipped set, or your own problems ([{"id", "problem", "answer"}])."""
        self.problems = load_math_problems(dataset) if problems is None else problems

    def prompt(self, problem: dict) -> Prompt:
        return Prompt(self.name, math_prompt(problem["problem"]), {"id": problem["id"], "answer": problem["answer"]})

    def prompts(self) -> list[Prompt]:
        return [self.prompt(p) for p in self.problems]

    def draw(self, rng: random.Random) -> Prompt:
        return self.prompt(rng.choice(self.problems))

    def grade(self, sandbox, completion: str, meta: dict) -> RewardResult:
        return grade_math(completion, meta["answer"])
