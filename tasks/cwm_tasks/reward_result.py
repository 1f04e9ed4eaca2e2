"""What every grader returns: the reward, why, and the per-test detail."""

import dataclasses

PASS, FAIL = 1.0, -1.0  # CWM's rule: +1 if everything passes, -1 otherwise


@dataclasses.dataclass
class TestOutcome:
    name: str
    passed: bool
    detail: str = ""


@dataclasses.dataclass
class RewardResult:
    reward: float
    status: str  # passed, failed, timeout, compile_error, no_answer, patch_failed, empty_patch, ...
    tests: list[TestOutcome] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    log: str = ""

    @property
    def passed(self) -> bool:
        return self.reward == PASS

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def from_tests(tests: list[TestOutcome], seconds: float, log: str = "", status_if_failed: str = "failed"):
    ok = bool(tests) and all(t.passed for t in tests)
    return RewardResult(PASS if ok else FAIL, "passed" if ok else status_if_failed, tests, seconds, log[-4000:])
