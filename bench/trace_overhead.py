"""Traced-vs-untraced slowdown of the CWM tracer (target: at most 50x on loop-heavy code).

For each call: time untraced, under a no-op sys.settrace (the floor any settrace tracer pays), and under
the tracer (recording plus building the frames; parsing and compiling the source once per trace is
reported separately). Corpus: the shipped functions (data/corpus/functions, their EXAMPLES), a few
loop-heavy kernels below, and CRUXEval end to end.

    python bench/trace_overhead.py
"""

import ast
import glob
import json
import pathlib
import statistics
import sys
import time
from typing import Any

from cwm_data.fuzz import parse_args
from cwm_data.trace_frames import TraceLimits
from cwm_data.trace_recorder import Recorder, SourceFiles
from cwm_data.tracer import FILENAME, trace

ROOT = pathlib.Path(__file__).resolve().parents[1]
LIMITS = TraceLimits(max_steps=10**8, timeout_s=600)
KERNELS = """
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
"""
KERNEL_CALLS = [
    ("sum_squares", "3000"),
    ("primes", "600"),
    ("word_counts", "['a', 'b', 'c', 'a'] * 300"),
    ("bubble", "list(range(60, 0, -1))"),
]


def _noop(frame, event, arg):
    return _noop


def ratios(source: str, entry: str, call_args: str, min_seconds: float = 0.02) -> tuple[float, float, int]:
    """(no-op settrace / plain, tracer / plain, frames per call), repeating the call to fill min_seconds."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(source, FILENAME, "exec"), namespace)
    target = namespace[entry]
    args, kwargs = eval(f"(lambda *a, **k: (a, k))({call_args})", namespace)

    def fn(*a, **k):
        try:
            return target(*a, **k)
        except Exception as e:  # examples that raise are traced too
            return e

    files = SourceFiles()
    files.add(FILENAME, source)

    def timed(mode) -> tuple[float, int]:
        reps, start, frames = 0, time.perf_counter(), 0
        while time.perf_counter() - start < min_seconds or reps < 3:
            if mode == "plain":
                fn(*args, **kwargs)
            elif mode == "noop":
                sys.settrace(_noop)
                fn(*args, **kwargs)
                sys.settrace(None)
            else:
                recorder = Recorder(files, target.__code__, LIMITS)
                sys.settrace(recorder.global_trace)
                fn(*args, **kwargs)
                sys.settrace(None)
                frames = len(recorder.frames)
            reps += 1
        return (time.perf_counter() - start) / reps, frames

    plain, _ = timed("plain")
    noop, _ = timed("noop")
    traced, frames = timed("traced")
    return noop / plain, traced / plain, frames


def corpus_calls():
    for path in sorted(glob.glob(str(ROOT / "data/corpus/functions/*.py"))):
        source = open(path).read()
        tree = ast.parse(source)
        table = next(
            ast.literal_eval(n.value)
            for n in tree.body
            if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "EXAMPLES" for t in n.targets)
        )
        for entry, examples in table.items():
            for args in examples:
                parse_args(args)
                yield source, entry, args


def main():
    rows = []
    for source, entry, args in corpus_calls():
        noop, traced, frames = ratios(source, entry, args)
        if frames >= 20:  # loop-heavy: the call runs at least 20 traced steps
            rows.append((f"{entry}({args})"[:40], noop, traced, frames))
    for source, entry, args in ((KERNELS, e, a) for e, a in KERNEL_CALLS):
        noop, traced, frames = ratios(source, entry, args)
        rows.append((f"kernel {entry}", noop, traced, frames))
    for name, noop, traced, frames in rows:
        print(f"{name:<42} {frames:6d} frames  no-op settrace {noop:5.1f}x  tracer {traced:7.1f}x")
    corpus = [r for r in rows if not r[0].startswith("kernel")]
    print(
        f"shipped corpus, loop-heavy calls ({len(corpus)}): geometric mean tracer "
        f"{statistics.geometric_mean([r[2] for r in corpus]):.1f}x, no-op settrace "
        f"{statistics.geometric_mean([r[1] for r in corpus]):.1f}x"
    )
    kernels = [r for r in rows if r[0].startswith("kernel")]
    print(f"kernels: geometric mean tracer {statistics.geometric_mean([r[2] for r in kernels]):.1f}x")
    crux = [json.loads(line) for line in (ROOT / "data/benchmarks/cruxeval/cruxeval.jsonl").read_text().splitlines()]
    start = time.perf_counter()
    for s in crux:
        assert trace(s["code"], "f", s["input"], limits=LIMITS).complete
    print(
        f"CRUXEval end to end (parse, compile, run, trace; 800 functions): "
        f"{len(crux) / (time.perf_counter() - start):,.0f} traces/s per core"
    )


if __name__ == "__main__":
    main()
