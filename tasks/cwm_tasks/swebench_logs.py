"""SWE-bench's own log parsers (the `swebench` package) over the graders' pytest log, for grading a task the
way SWE-bench's harness does: the parser SWE-bench names for the task's repository, pytest's otherwise. The
log is the runner's pytest output, whose `-rA` summary names each test's outcome."""

from collections.abc import Callable

from cwm_common.errors import CwmError


def swebench_log_parser(repo: str | None) -> Callable[[str], dict[str, str]]:
    """log -> {test id: outcome} ("passed", "failed", "skipped", "error", ...), as SWE-bench parses it."""
    try:
        from swebench.harness.log_parsers.python import MAP_REPO_TO_PARSER_PY, parse_log_pytest
    except ImportError:
        raise CwmError("the swebench log parser needs the swebench package: pip install 'cwm-jax[swebench]'") from None
    parse = MAP_REPO_TO_PARSER_PY.get(repo or "", parse_log_pytest)

    def outcomes(log: str) -> dict[str, str]:
        return {test: status.lower() for test, status in parse(log, None).items()}

    return outcomes
