"""The tracer against Python itself: return values against real calls, executed lines against sys.settrace."""

import json
import pathlib
import sys
from typing import Any

import pytest

from cwm_data.inlined_comprehensions import inside_comprehension
from cwm_data.safe_repr import safe_repr
from cwm_data.trace_frames import CALL, EXCEPTION, EXCEPTION_EXIT, LINE, OK, RETURN, STEP_LIMIT, TIMEOUT, TraceLimits
from cwm_data.tracer import FILENAME, START_MARKER, trace

HERE = pathlib.Path(__file__).parent
CASES_SOURCE = (HERE / "data" / "trace_cases.py").read_text()
namespace: dict[str, Any] = {}
exec(compile(CASES_SOURCE, "trace_cases", "exec"), namespace)
CASES = namespace["CASES"]
CRUXEVAL = [
    json.loads(line)
    for line in (HERE.parent / "data" / "benchmarks" / "cruxeval" / "cruxeval.jsonl").read_text().splitlines()
]
_NOT_SCOPES = {"<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>", "<lambda>"}


def settrace_reference(source: str, entry: str, call_args: str):
    """Executed lines of the entry's call tree as plain sys.settrace reports them, and the real outcome."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(source, FILENAME, "exec"), namespace)
    args, kwargs = eval(f"(lambda *a, **k: (a, k))({call_args})", namespace)
    target = getattr(namespace[entry], "__wrapped__", namespace[entry]).__code__
    lines, inside = [], [False]

    def local(frame, event, arg):
        # 3.12 runs list/dict/set comprehensions inline: their loop's lines are the comprehension frame's of 3.11.
        if event == "line" and not inside_comprehension(frame.f_code, frame.f_lasti):
            lines.append(frame.f_lineno)
        return local

    def global_(frame, event, arg):
        code = frame.f_code
        inside[0] = inside[0] or code is target
        if inside[0] and code.co_filename == FILENAME and code.co_name not in _NOT_SCOPES:
            return local
        return None

    sys.settrace(global_)
    try:
        outcome = namespace[entry](*args, **kwargs)
    except Exception as e:
        outcome = e
    finally:
        sys.settrace(None)
    return lines, outcome


def traced_lines(result) -> list[int]:
    return [n for f, n in zip(result.frames, result.linenos, strict=True) if f.event == LINE]


@pytest.mark.parametrize("entry, call_args", CASES, ids=[f"{e}({a})" for e, a in CASES])
def test_cases_match_python(entry, call_args):
    result = trace(CASES_SOURCE, entry, call_args)
    lines, outcome = settrace_reference(CASES_SOURCE, entry, call_args)
    assert traced_lines(result) == lines
    last = result.frames[-1]
    if isinstance(outcome, Exception):
        # The last exception frame carries it (a finally block may run lines after it).
        raised = [f for f in result.frames if f.event == EXCEPTION]
        assert result.status == EXCEPTION_EXIT and raised[-1].value == repr(outcome)
    else:
        assert result.status == OK and last.event == RETURN and last.value == safe_repr(outcome, 1000)
    # The entry's def line is marked in the source (the prompt's context), and shown unmarked in its call frame.
    call = result.frames[0]
    assert (
        call.event == CALL and START_MARKER not in call.line and call.line.rstrip("\n") + START_MARKER in result.source
    )
    assert "0x" not in json.dumps([f.to_json() for f in result.frames])  # addresses are normalized


def test_cruxeval_return_values_and_lines_match_python():
    mismatches = []
    for sample in CRUXEVAL:
        result = trace(sample["code"], "f", sample["input"])
        lines, _ = settrace_reference(sample["code"], "f", sample["input"])
        expected = eval(sample["output"])
        returned = result.frames[-1].value if result.status == OK else None
        if returned is None or eval(returned) != expected or traced_lines(result) != lines:
            mismatches.append(sample["id"])
    assert len(CRUXEVAL) == 800 and mismatches == []


def _frames(entry, call_args, **limits):
    return trace(CASES_SOURCE, entry, call_args, limits=TraceLimits(**limits))


def test_line_locals_are_the_state_before_the_line():
    frames = _frames("fizz", "2").frames
    assert frames[0] == frames[0].__class__(CALL, "def fizz(n):\n", {"n": "2"})
    assert (frames[1].line, frames[1].locals) == ("    out = []\n", {"n": "2"})
    assert (frames[2].line, frames[2].locals) == ("    i = 1\n", {"n": "2", "out": "[]"})
    assert frames[-1].value == "[1, 2]"


def test_generators_yield_as_returns_and_resume_as_calls():
    frames = _frames("use_generator", "2").frames
    gen = [f for f in frames if "countdown" in f.line or f.line.strip() in ("yield n", "n -= 1")]
    events = [(f.event, f.value) for f in gen if f.event in (CALL, RETURN)]
    assert events[:4] == [(CALL, None), (RETURN, "2"), (CALL, None), (RETURN, "1")]


def test_exceptions_caught_and_uncaught():
    caught = _frames("caught", "[-2]").frames
    i = next(k for k, f in enumerate(caught) if f.event == EXCEPTION)
    assert caught[i].value == "ValueError('negative: -2')" and "raise" in caught[i].line
    # It propagates into the caller (an exception frame there), which handles it on its except line.
    assert caught[i + 1].event == EXCEPTION and "risky(x)" in caught[i + 1].line
    assert caught[i + 2].event == LINE and "except ValueError" in caught[i + 2].line
    result = _frames("uncaught", "1")
    assert result.status == EXCEPTION_EXIT and result.complete and result.frames[-1].event == EXCEPTION


def test_unreprable_and_huge_values():
    bad = _frames("bad_repr", "").frames
    assert bad[-1].value == "<repr of BadRepr raised RuntimeError>"
    huge = _frames("huge", "", max_repr_chars=50).frames
    shown = [f.locals["big"] for f in huge if f.locals and "big" in f.locals]
    assert shown and all(len(s) == 53 and s.endswith("...") and s.startswith("[0, 1, 2") for s in shown)


def test_limits_end_the_trace_with_a_status():
    loop = "def spin():\n    while True:\n        pass\n"
    result = trace(loop, "spin", limits=TraceLimits(max_steps=100))
    assert result.status == STEP_LIMIT and len(result.frames) == 100 and not result.complete
    result = trace(loop, "spin", limits=TraceLimits(max_steps=10**9, timeout_s=0.2))
    assert result.status == TIMEOUT and result.seconds >= 0.2 and 0 < len(result.frames) < 10**9


def test_max_depth_steps_over_deeper_calls():
    frames = _frames("fact", "4", max_depth=1).frames
    assert [f.locals["n"] for f in frames if f.event == CALL] == ["4", "3"]
    assert frames[-1].value == "24"


def test_setup_errors_are_reported():
    assert trace("def f(:\n", "f").status == "error"
    assert "not defined" in trace("def f():\n    pass\n", "g").error
    assert "setup raised NameError" in trace("def f(x):\n    pass\n", "f", "undefined_name").error


def test_inlined_comprehensions_trace_as_on_python_311():
    """3.12 runs list/dict/set comprehensions in their function's frame (PEP 709): the trace still has one line
    event per statement, as 3.11's did, and no comprehension variable among the function's locals."""
    source = (
        "def f(xs):\n"
        "    ys = [x * 2 for x in xs if x]\n"
        "    zs = {k: [v for v in range(k)] for k in ys}\n"
        "    return len(zs)\n"
    )
    result = trace(source, "f", "[0, 1, 2]")
    lines = [(frame.event, frame.line.strip()[:6]) for frame in result.frames]
    assert lines == [
        (CALL, "def f("),
        (LINE, "ys = ["),
        (LINE, "zs = {"),
        (LINE, "return"),
        (RETURN, "return"),
    ]
    assert all(set(frame.locals or {}) <= {"xs", "ys", "zs"} for frame in result.frames)
