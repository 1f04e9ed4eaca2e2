"""Traced-vs-untraced slowdown of the CWM tracer (target: at most 50x on loop-heavy code).

Runs each function untraced, under a no-op sys.settrace (the floor any settrace tracer pays), and under
the tracer, in this process, and prints the ratios. Corpus: loop-heavy functions below, and CRUXEval.

    python bench/trace_overhead.py
"""

import json
import pathlib
import statistics
import sys
import time

from cwm_data.trace_frames import TraceLimits
from cwm_data.tracer import FILENAME, trace

ROOT = pathlib.Path(__file__).resolve().parents[1]

LOOPS = '''
def sum_squares(n):
    total = 0
    for i in range(n):
        total += i * i
    return total

def primes(n):
    found = []
    for k in range(2, n):
        is_prime = True
        d = 2
        while d * d <= k:
            if k % d == 0:
                is_prime = False
                break
            d += 1
        if is_prime:
            found.append(k)
    return len(found)

def word_counts(words):
    counts = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    best = max(counts, key=counts.get)
    return best, counts[best]

def bubble(xs):
    xs = list(xs)
    for i in range(len(xs)):
        for j in range(len(xs) - 1 - i):
            if xs[j] > xs[j + 1]:
                xs[j], xs[j + 1] = xs[j + 1], xs[j]
    return xs[:3]
'''
LOOP_CALLS = [("sum_squares", "3000"), ("primes", "600"), ("word_counts", "['a', 'b', 'c', 'a'] * 300"),
              ("bubble", "list(range(60, 0, -1))")]
LIMITS = TraceLimits(max_steps=10**7, timeout_s=600)


def _noop(frame, event, arg):
    return _noop


def time_call(source, entry, call_args, mode, repeats=3):
    namespace = {"__name__": "__main__"}
    exec(compile(source, FILENAME, "exec"), namespace)
    fn = namespace[entry]
    args, kwargs = eval(f"(lambda *a, **k: (a, k))({call_args})", namespace)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        if mode == "plain":
            fn(*args, **kwargs)
        elif mode == "noop":
            sys.settrace(_noop)
            fn(*args, **kwargs)
            sys.settrace(None)
        else:
            result = trace(source, entry, call_args, limits=LIMITS)
            assert result.complete, result.status
        times.append(time.perf_counter() - start)
    return min(times)


def measure(cases):
    rows = []
    for source, entry, call_args in cases:
        plain, noop, traced = (time_call(source, entry, call_args, m) for m in ("plain", "noop", "traced"))
        rows.append((entry, noop / plain, traced / plain))
    return rows


def main():
    loops = measure([(LOOPS, e, a) for e, a in LOOP_CALLS])
    for entry, noop, traced in loops:
        print(f"{entry:<12} no-op settrace {noop:6.1f}x   tracer {traced:6.1f}x")
    crux = [json.loads(line) for line in (ROOT / "data/benchmarks/cruxeval/cruxeval.jsonl").read_text().splitlines()]
    # Whole-corpus ratio: total traced time over total untraced time (tiny functions, so totals).
    plain = sum(time_call(s["code"], "f", s["input"], "plain", 1) for s in crux)
    traced = sum(time_call(s["code"], "f", s["input"], "traced", 1) for s in crux)
    print(f"loop-heavy geometric mean: tracer {statistics.geometric_mean([r[2] for r in loops]):.1f}x "
          f"(no-op settrace {statistics.geometric_mean([r[1] for r in loops]):.1f}x)")
    print(f"CRUXEval (800 functions, incl. source parsing and compile per trace): {traced / plain:.0f}x, "
          f"{len(crux) / traced:,.0f} traces/s per core")


if __name__ == "__main__":
    main()
