"""Math answers: the last \\boxed{...} of a response, checked for equivalence with Math-Verify (sympy),
not by string equality, in a worker process with a deadline (math_workers.py)."""

import time

from cwm_envs.tasks.math_workers import DEADLINE_S, compare_in_worker
from cwm_envs.tasks.reward_result import FAIL, PASS, RewardResult, TestOutcome


def extract_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} (braces balanced), or None."""
    start = text.rfind("\\boxed")
    while start >= 0:
        i = text.find("{", start)
        if i >= 0 and text[start + len("\\boxed"):i].strip() == "":
            depth = 0
            for j in range(i, len(text)):
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                if depth == 0:
                    return text[i + 1:j]
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
        return RewardResult(FAIL, "timeout", [TestOutcome("answer", False, f"answer {answer[:200]!r}: no verdict "
                                                          f"in {DEADLINE_S:g} s")], time.perf_counter() - start)
    equal = reply.get("equal", False)
    log = reply.get("error", "")
    outcome = TestOutcome("answer", equal, f"answer {answer!r}, reference {reference!r}")
    return RewardResult(PASS if equal else FAIL, "passed" if equal else "failed", [outcome],
                        time.perf_counter() - start, log)
