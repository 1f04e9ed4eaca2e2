"""stdin/stdout programs (Python or C++, compiled with g++ inside the sandbox), every test graded."""

import dataclasses
import time

from cwm_envs.sandbox import Sandbox
from cwm_envs.tasks.reward_result import FAIL, RewardResult, TestOutcome, from_tests

LANGUAGES = ("python", "cpp")


@dataclasses.dataclass(frozen=True)
class StdioTest:
    stdin: str
    expected: str


def same_output(actual: str, expected: str) -> bool:
    """Equal up to trailing spaces on lines and trailing blank lines (the usual judge rule)."""
    def norm(text):
        return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())
    return norm(actual) == norm(expected)


def grade_stdio(sandbox: Sandbox, source: str, language: str, tests: list[StdioTest],
                timeout_per_test: float = 5.0, compile_timeout: float = 60.0) -> RewardResult:
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
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    outcomes = []
    for i, test in enumerate(tests):
        result = sandbox.exec(run, stdin=test.stdin, timeout=timeout_per_test)
        actual = result.stdout.decode(errors="replace")
        if result.timed_out:
            outcomes.append(TestOutcome(f"test {i}", False, "timeout"))
        elif result.exit_code != 0:
            outcomes.append(TestOutcome(f"test {i}", False, f"exit code {result.exit_code}: "
                                                            f"{result.stderr.decode(errors='replace')[-300:]}"))
        else:
            passed = same_output(actual, test.expected)
            outcomes.append(TestOutcome(f"test {i}", passed, "" if passed else f"got {actual[:200]!r}"))
    return from_tests(outcomes, time.perf_counter() - start)
