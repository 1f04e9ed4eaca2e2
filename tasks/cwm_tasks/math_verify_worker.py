"""A Math-Verify worker process (math_verify_pool.py starts it): one JSON request per stdin line
({"answer", "reference"}), one JSON line back ({"equal": bool} or {"error": why}). Running here, on this
process's main thread, Math-Verify's own SIGALRM timeouts work; the parent kills the process if even they
do not end a comparison."""

import json
import sys

from math_verify import parse, verify

TIMEOUT_S = 5


def compare(answer: str, reference: str) -> bool:
    """The release's Math-Verify comparison: the answer's `\\boxed{...}` text against the boxed reference,
    both read with the Latex and expression extractors (parse's defaults)."""
    gold = parse(f"\\boxed{{{reference}}}", parsing_timeout=TIMEOUT_S)
    predicted = parse(answer, parsing_timeout=TIMEOUT_S)
    return bool(gold) and bool(predicted) and verify(gold, predicted, strict=True, timeout_seconds=TIMEOUT_S)


def main():
    for line in sys.stdin:
        try:
            request = json.loads(line)
            reply: dict[str, bool | str] = {"equal": compare(request["answer"], request["reference"])}
        except Exception as e:  # a bad request or a sympy failure is that answer's problem, not the worker's
            reply = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
