"""Math answers graded per second through the worker processes (grade_math) against Math-Verify called
directly in this process on its main thread (the limit, and unsafe from rollout threads), in the same run,
on the shipped AIME/AMC/GSM8K references; then the same through 4 threads.

    python bench/math_grading.py [--n 300]
"""

import argparse
import json
import pathlib
import time
from concurrent.futures import ThreadPoolExecutor

from math_verify import parse, verify

from cwm_tasks.math_problems import grade_math

MATH = pathlib.Path(__file__).resolve().parents[1] / "data" / "benchmarks" / "math"


def direct(answer: str, reference: str) -> bool:
    gold, predicted = parse(f"\\boxed{{{reference}}}"), parse(f"\\boxed{{{answer}}}")
    return bool(gold) and bool(predicted) and verify(gold, predicted)


def reply(answer: str) -> str:
    return f"Done.\n</think>\n$\\boxed{{{answer}}}$"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    references = []
    for path in sorted(MATH.glob("*.jsonl")):
        references += [str(json.loads(line)["answer"]) for line in path.read_text().splitlines() if line.strip()]
    references = (references * (args.n // len(references) + 1))[: args.n]
    grade_math(reply("1"), "1")  # start a worker: its imports are not what is measured

    start = time.perf_counter()
    assert all(direct(r, r) for r in references)
    in_process = args.n / (time.perf_counter() - start)
    start = time.perf_counter()
    assert all(grade_math(reply(r), r).passed for r in references)
    workers = args.n / (time.perf_counter() - start)
    with ThreadPoolExecutor(4) as threads:
        start = time.perf_counter()
        assert all(r.passed for r in threads.map(lambda r: grade_math(reply(r), r), references))
        threaded = args.n / (time.perf_counter() - start)
    print(
        f"{args.n} answers: in-process {in_process:.0f}/s; worker process {workers:.0f}/s "
        f"({workers / in_process:.2f}x); 4 threads over 4 workers {threaded:.0f}/s ({threaded / in_process:.2f}x)"
    )


if __name__ == "__main__":
    main()
