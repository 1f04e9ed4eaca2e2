"""Math problems (AIME 2024, AMC 2023, GSM8K test) in the release's math environment
(cwm/rl/envs/envs/math_think_dialog.py, `math_cwmthinktag_env`): the reasoning system prompt, the problem
followed by "Wrap your answer in $\\boxed{}$.", the assistant starting inside "<think>".

The answer is read as the release reads it: exactly one "</think>", then exactly one `$\\boxed{...}$` after it
(a dollar sign right before `\\boxed{`, up to the first `}$`); anything else is no answer. `lenient`, an
explicit option for looking at models that do not follow the format, takes the last balanced \\boxed{...}
anywhere instead. The answer is compared with the reference by Math-Verify (sympy), as the release's second
comparator does, in a worker process with a deadline (math_verify_pool.py).
"""

import os
import random
import re
import time

from cwm_common.errors import CwmError
from cwm_common.jsonl import read_jsonl
from cwm_common.repo_paths import BENCHMARKS
from cwm_data.chat_format import STOP_TOKENS, THINK_END, after_reasoning, generation_prompt, system_prompt
from cwm_tasks.math_verify_pool import DEADLINE_S, compare_in_worker
from cwm_tasks.reward_result import FAIL, PASS, RewardResult, TestOutcome
from cwm_tasks.task import Prompt

MATH_SETS = ("aime24", "amc23", "gsm8k_test")
NO_ANSWER = {"release": "no answer: exactly one </think>, then exactly one $\\boxed{...}$", "lenient": "no \\boxed{}"}
EXTRACTIONS = tuple(NO_ANSWER)
_DOLLAR_BOXED = re.compile(r".*?\$(\\boxed{.*?})\$", re.DOTALL)


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
    user = f"{problem}\n\nWrap your answer in $\\boxed{{}}$."
    return generation_prompt([("system", system_prompt()), ("user", user)], reasoning=True)


def release_answer(response: str) -> str | None:
    """The `\\boxed{...}` text of a response as the release accepts it, or None (see the module docstring)."""
    if response.count(THINK_END) != 1:
        return None
    answer = after_reasoning(response).strip()
    if answer.startswith("[your external response]"):  # the system prompt's placeholder, echoed
        return None
    found = _DOLLAR_BOXED.findall(answer)
    return found[0].strip() if len(found) == 1 else None


def last_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} anywhere (braces balanced), or None: the lenient reading."""
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


def extract_answer(response: str, extraction: str = "release") -> str | None:
    """The answer as `\\boxed{...}` text, by the release's rule or (explicitly) the lenient one."""
    if extraction == "release":
        return release_answer(response)
    content = last_boxed(response)
    return None if content is None else f"\\boxed{{{content}}}"


def grade_math(response: str, reference: str, extraction: str = "release") -> RewardResult:
    """+1 when the answer equals the reference in value, else -1 (no answer: -1, status no_answer)."""
    start = time.perf_counter()
    answer = extract_answer(response, extraction)
    if answer is None:
        why = NO_ANSWER[extraction]
        return RewardResult(FAIL, "no_answer", [], time.perf_counter() - start, why)
    reply = compare_in_worker(answer, reference)
    if reply is None:
        outcome = TestOutcome("answer", False, f"answer {answer[:200]!r}: no verdict in {DEADLINE_S:g} s")
        return RewardResult(FAIL, "timeout", [outcome], time.perf_counter() - start)
    equal = bool(reply.get("equal", False))
    outcome = TestOutcome("answer", equal, f"answer {answer!r}, reference {reference!r}")
    status = "passed" if equal else "failed"
    return RewardResult(PASS if equal else FAIL, status, [outcome], time.perf_counter() - start, reply.get("error", ""))


class MathTask:
    name, multi_turn, needs_sandbox, stops = "math", False, False, STOP_TOKENS

    def __init__(self, dataset: str = "gsm8k_test", problems: list[dict] | None = None, extraction: str = "release"):
        """A shipped set, or your own problems ([{"id", "problem", "answer"}])."""
        if extraction not in EXTRACTIONS:
            raise CwmError(f"math extraction {extraction!r} is not one of {', '.join(EXTRACTIONS)}")
        self.problems = load_math_problems(dataset) if problems is None else problems
        self.extraction = extraction

    def prompt(self, problem: dict) -> Prompt:
        return Prompt(self.name, math_prompt(problem["problem"]), {"id": problem["id"], "answer": problem["answer"]})

    def prompts(self) -> list[Prompt]:
        return [self.prompt(p) for p in self.problems]

    def draw(self, rng: random.Random) -> Prompt:
        return self.prompt(rng.choice(self.problems))

    def grade(self, sandbox, completion: str, meta: dict) -> RewardResult:
        return grade_math(completion, meta["answer"], self.extraction)
