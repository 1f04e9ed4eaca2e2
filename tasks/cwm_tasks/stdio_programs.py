"""stdin/stdout programs (CWM's competitive-programming RL): LiveCodeBench-layout problems, a prompt asking for
a Python or C++ solution in a fenced code block (the release's "ours" LiveCodeBench template), and a grader
that runs the program on every public and private test in a sandbox (C++ compiled with g++ there).

Problems ship in data/benchmarks/stdio/problems.jsonl (written for this project, with reference solutions in
solutions/); any file in LiveCodeBench's layout with stdin tests loads the same way.
"""

import dataclasses
import json
import os
import random
import re
import time

from cwm_common.errors import CwmError
from cwm_common.jsonl import read_jsonl
from cwm_common.repo_paths import BENCHMARKS
from cwm_data.chat_format import REASONING_SYSTEM_PROMPT, STOP_TOKENS, generation_prompt
from cwm_envs.sandbox import Sandbox
from cwm_tasks.reward_result import FAIL, RewardResult, TestOutcome, from_tests
from cwm_tasks.task import Prompt

LANGUAGES = ("python", "cpp")
LANGUAGE_NAMES = {"python": "Python", "cpp": "C++"}
FENCE_TAGS = {"python": ("python", "python3", "py"), "cpp": ("cpp", "c++", "cc", "cxx")}
SHIPPED_PROBLEMS = os.path.join(BENCHMARKS, "stdio", "problems.jsonl")
_FENCE = re.compile(r"```([^\n`]*)\n(.*?)```", re.DOTALL)


@dataclasses.dataclass(frozen=True)
class StdioTest:
    stdin: str
    expected: str


@dataclasses.dataclass(frozen=True)
class StdioProblem:
    problem_id: str
    title: str
    statement: str
    public_tests: tuple[StdioTest, ...]
    private_tests: tuple[StdioTest, ...]

    @property
    def tests(self) -> tuple[StdioTest, ...]:
        return self.public_tests + self.private_tests


def _tests(record: dict, field: str, where: str) -> tuple[StdioTest, ...]:
    raw = record.get(field, "[]")
    try:
        cases = json.loads(raw) if isinstance(raw, str) else raw
        return tuple(StdioTest(c["input"], c["output"]) for c in cases if c.get("testtype", "stdin") == "stdin")
    except (json.JSONDecodeError, TypeError, KeyError) as e:
        raise CwmError(f"{where}: field '{field}' is not a list of {{input, output}} tests ({e})") from None


def load_stdio_problems(path: str = SHIPPED_PROBLEMS) -> list[StdioProblem]:
    problems = []
    for i, record in enumerate(read_jsonl(path)):
        where = f"{path} record {i + 1}"
        missing = [f for f in ("question_id", "question_content", "public_test_cases") if f not in record]
        if missing:
            raise CwmError(f"{where}: missing field '{missing[0]}'")
        problem = StdioProblem(
            record["question_id"],
            record.get("question_title", ""),
            record["question_content"],
            _tests(record, "public_test_cases", where),
            _tests(record, "private_test_cases", where),
        )
        if not problem.tests:
            raise CwmError(f"{where}: no stdin tests")
        problems.append(problem)
    return problems


def stdio_prompt(problem: StdioProblem, language: str) -> list[str]:
    name = LANGUAGE_NAMES[language]
    user = (
        f"Provide a {name} solution for the following competitive programming question: {problem.statement}.\n"
        f"Your code should be enclosed in triple backticks like so: ```{language} YOUR CODE HERE ```. Use the "
        f"backticks for your code only. Your code should read from and write to standard io."
    )
    return generation_prompt([("system", REASONING_SYSTEM_PROMPT), ("user", user)], reasoning=True)


def extract_code(completion: str, language: str) -> str | None:
    """The first fenced code block tagged with the language (```python, ```cpp, ...), after any reasoning."""
    answer = completion.rsplit("</think>", 1)[-1]
    for tag, code in _FENCE.findall(answer):
        if tag.strip().lower() in FENCE_TAGS[language]:
            return code
    return None


def same_output(actual: str, expected: str) -> bool:
    """Equal up to trailing spaces on lines and trailing blank lines (the usual judge rule)."""

    def norm(text):
        return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())

    return norm(actual) == norm(expected)


def grade_stdio(
    sandbox: Sandbox,
    source: str,
    language: str,
    tests: list[StdioTest],
    timeout_per_test: float = 5.0,
    compile_timeout: float = 60.0,
) -> RewardResult:
    start = time.perf_counter()
    if language == "python":
        sandbox.put_file("main.py", source)
        run = ["python3", "main.py"]
    elif language == "cpp":
        sandbox.put_file("main.cpp", source)
        built = sandbox.exec(["g++", "-O2", "-std=c++17", "-o", "main", "main.cpp"], timeout=compile_timeout)
        if not built.ok:
            return RewardResult(FAIL, "compile_error", [], time.perf_counter() - start, built.text()[-4000:])
        run = ["./main"]
    else:
        raise CwmError(f"language must be one of {', '.join(LANGUAGES)}, got {language!r}")
    outcomes = []
    for i, test in enumerate(tests):
        result = sandbox.exec(run, stdin=test.stdin, timeout=timeout_per_test)
        actual = result.stdout.decode(errors="replace")
        if result.timed_out:
            outcomes.append(TestOutcome(f"test {i}", False, "timeout"))
        elif result.exit_code != 0:
            outcomes.append(
                TestOutcome(
                    f"test {i}", False, f"exit code {result.exit_code}: {result.stderr.decode(errors='replace')[-300:]}"
                )
            )
        else:
            passed = same_output(actual, test.expected)
            outcomes.append(TestOutcome(f"test {i}", passed, "" if passed else f"got {actual[:200]!r}"))
    return from_tests(outcomes, time.perf_counter() - start)


class StdioTask:
    """Every (problem, language) pair is a prompt; the completion's code block is graded on all the tests."""

    name, multi_turn, needs_sandbox, stops = "stdio", False, True, STOP_TOKENS

    def __init__(self, path: str = SHIPPED_PROBLEMS, languages: tuple[str, ...] = LANGUAGES):
        unknown = [lang for lang in languages if lang not in LANGUAGES]
        if unknown:
            raise CwmError(f"stdio language '{unknown[0]}' is not one of {', '.join(LANGUAGES)}")
        self.problems = {p.problem_id: p for p in load_stdio_problems(path)}
        self.languages = tuple(languages)

    def prompt(self, problem: StdioProblem, language: str) -> Prompt:
        return Prompt(
            self.name,
            stdio_prompt(problem, language),
            {"id": f"{problem.problem_id}/{language}", "problem": problem.problem_id, "language": language},
        )

    def prompts(self) -> list[Prompt]:
        return [self.prompt(p, lang) for p in self.problems.values() for lang in self.languages]

    def draw(self, rng: random.Random) -> Prompt:
        return self.prompt(self.problems[rng.choice(sorted(self.problems))], rng.choice(self.languages))

    def grade(self, sandbox, completion: str, meta: dict) -> RewardResult:
        code = extract_code(completion, meta["language"])
        if code is None:
            return RewardResult(FAIL, "no_code", log=f"no ```{meta['language']} code block in the answer")
        return grade_stdio(sandbox, code, meta["language"], list(self.problems[meta["problem"]].tests))
