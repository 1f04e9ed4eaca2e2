"""Trace prediction: given a function's source and the call (its first frame), the model writes the whole
trace in CWM's format; scored frame by frame against the real tracer's. The problems are the shipped
corpus's functions, one call each."""

import glob
import os

from cwm_common.repo_paths import CORPUS
from cwm_data import trace_format
from cwm_data.generators.corpus_jobs import function_jobs
from cwm_data.sandboxed_tracer import TracerPool
from cwm_data.trace_frames import CALL, LINE, RETURN, TraceLimits, TraceResult

METRICS = ("format_valid", "frame_exact", "locals", "return_value")


def corpus_cases() -> list[tuple[str, str, str]]:
    """(source, entry, call-args source) for each function of the shipped corpus."""
    paths = sorted(glob.glob(os.path.join(CORPUS, "functions", "*.py")))
    jobs, _ = function_jobs(paths, per_function=1)
    return [(j.source, j.entry, j.call_args) for j in jobs if j.entry is not None]  # function jobs all have one


def real_traces(cases: list[tuple[str, str, str]]) -> list[TraceResult]:
    """The tracer's traces of the cases that complete (traced in sandboxes)."""
    calls = [(source, entry, call_args, None) for source, entry, call_args in cases]
    with TracerPool(os.cpu_count() or 1) as tracers:
        return [t for t in tracers.trace_all(calls, TraceLimits()) if t.complete]


def prediction_prompt(real: TraceResult) -> list[str]:
    """The source, then the first (call) frame, as a debugger user would give it."""
    return trace_format.prompt(real.source) + trace_format.render(real.frames[:1], complete=False)


def predicted_frames(real: TraceResult, completion: list[str]) -> list | None:
    """The frames of a completion (pieces) continuing prediction_prompt(real); None unless a complete trace."""
    try:
        frames, complete = trace_format.parse(trace_format.render(real.frames[:1], False) + completion)
    except trace_format.TraceFormatError:
        return None
    return frames if complete else None


def trace_metrics(real: list, predicted: list | None) -> dict[str, float]:
    """frame_exact: share of real frames predicted exactly at their index; locals: share of real
    (frame, name, value) triples predicted; return_value: the entry's return value; format_valid."""
    if predicted is None:
        return {"format_valid": 0.0, "frame_exact": 0.0, "locals": 0.0, "return_value": 0.0}
    exact = sum(1 for i, frame in enumerate(real) if i < len(predicted) and predicted[i] == frame)
    total = hit = 0
    for i, frame in enumerate(real):
        if frame.event in (CALL, LINE):
            other = predicted[i].locals if i < len(predicted) and predicted[i].locals is not None else {}
            total += len(frame.locals)
            hit += sum(1 for k, v in frame.locals.items() if other.get(k) == v)
    returns = [f.value for f in real if f.event == RETURN]
    predicted_returns = [f.value for f in predicted if f.event == RETURN]
    return_ok = bool(returns and predicted_returns and predicted_returns[-1] == returns[-1])
    return {
        "format_valid": 1.0,
        "frame_exact": exact / len(real),
        "locals": hit / total if total else 1.0,
        "return_value": float(return_ok),
    }
