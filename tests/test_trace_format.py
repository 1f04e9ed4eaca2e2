import json
import pathlib
from typing import Any

import pytest

from cwm_data import special_tokens as st
from cwm_data import trace_format as tf
from cwm_data.special_tokens import SpecialToken
from cwm_data.tracer import trace

HERE = pathlib.Path(__file__).parent
CASES_SOURCE = (HERE / "data" / "trace_cases.py").read_text()
namespace: dict[str, Any] = {}
exec(compile(CASES_SOURCE, "trace_cases", "exec"), namespace)
CRUXEVAL = [
    json.loads(line)
    for line in (HERE.parent / "data" / "benchmarks" / "cruxeval" / "cruxeval.jsonl").read_text().splitlines()
]

GOLDEN_SOURCE = (
    "def g(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total\n\n"
    "def main():\n    return g([2, 5])\n"
)
# CWM.md section 3.2, written out by hand from the format specification.
GOLDEN_TRACE = (
    "<|call_sep|>{}<|action_sep|>def main():  # << START_OF_TRACE\n<|frame_sep|>"
    "<|line_sep|>{}<|action_sep|>    return g([2, 5])\n<|frame_sep|>"
    '<|call_sep|>{"xs": "[2, 5]"}<|action_sep|>def g(xs):\n<|frame_sep|>'
    '<|line_sep|>{"xs": ".."}<|action_sep|>    total = 0\n<|frame_sep|>'
    '<|line_sep|>{"xs": "..", "total": "0"}<|action_sep|>    for x in xs:\n<|frame_sep|>'
    '<|line_sep|>{"xs": "..", "total": "..", "x": "2"}<|action_sep|>        total += x\n<|frame_sep|>'
    '<|line_sep|>{"xs": "..", "total": "2", "x": ".."}<|action_sep|>    for x in xs:\n<|frame_sep|>'
    '<|line_sep|>{"xs": "..", "total": "..", "x": "5"}<|action_sep|>        total += x\n<|frame_sep|>'
    '<|line_sep|>{"xs": "..", "total": "7", "x": ".."}<|action_sep|>    for x in xs:\n<|frame_sep|>'
    '<|line_sep|>{"xs": "..", "total": "..", "x": ".."}<|action_sep|>    return total\n<|frame_sep|>'
    '<|return_sep|><|action_sep|>    return total\n<|arg_sep|>"7"<|frame_sep|>'
    '<|return_sep|><|action_sep|>    return g([2, 5])\n<|arg_sep|>"7"<|frame_sep|>'
    "<|end_of_text|>"
)


def test_golden_trace_token_for_token():
    result = trace(GOLDEN_SOURCE, "main")
    pieces = tf.prompt(result.source) + tf.render(result.frames, result.complete)
    expected = (
        "<|begin_of_text|><|trace_context_start|>"
        + GOLDEN_SOURCE.replace("def main():", "def main():  # << START_OF_TRACE")
        + "<|frame_sep|>"
        + GOLDEN_TRACE
    )
    assert tf.to_text(pieces) == expected
    specials = [p for p in pieces if isinstance(p, SpecialToken)]
    assert specials[:3] == [st.BEGIN_OF_TEXT, st.TRACE_CONTEXT_START, st.FRAME_SEP]
    assert len(specials) == 3 + 3 * 10 + 4 * 2 + 1  # prompt; 10 call/line frames; 2 return frames; end


def _round_trip(result):
    pieces = tf.render(result.frames, result.complete)
    frames, complete = tf.parse(pieces)
    assert frames == result.frames and complete == result.complete
    return pieces


@pytest.mark.parametrize("entry, call_args", namespace["CASES"])
def test_round_trip_of_varied_traces(entry, call_args):
    _round_trip(trace(CASES_SOURCE, entry, call_args))


def test_round_trip_of_all_cruxeval_traces_through_text():
    for sample in CRUXEVAL:
        result = trace(sample["code"], "f", sample["input"])
        pieces = _round_trip(result)
        assert tf.parse(tf.split_text(tf.to_text(pieces)))[0] == result.frames, sample["id"]


def test_round_trip_when_an_exception_leaves_through_finally():
    # Python reports no exception where g leaves after its finally block; the tracer adds one there so a
    # reader knows g ended and resolves f's ".." against f's own values.
    source = (
        "def g(x):\n    try:\n        raise KeyError(x)\n    finally:\n        x = 0\n\n"
        "def f(x):\n    y = x\n    try:\n        g(x)\n    except KeyError:\n        y = y + 1\n    return x, y\n"
    )
    result = trace(source, "f", "0")
    _round_trip(result)
    kinds = [(f.event, f.line.strip()) for f in result.frames]
    assert kinds[kinds.index(("line", "x = 0")) + 1] == ("exception", "x = 0")
    assert kinds[kinds.index(("line", "x = 0")) + 2] == ("exception", "g(x)")


def test_special_token_spellings_in_code_stay_text():
    source = 'def f():\n    s = "<|frame_sep|>"\n    return s\n'
    result = trace(source, "f")
    pieces = tf.render(result.frames, result.complete)
    assert sum(p == st.FRAME_SEP and isinstance(p, SpecialToken) for p in pieces) == len(result.frames)
    assert tf.parse(pieces)[0] == result.frames


def _broken(text):
    return tf.validate(tf.split_text(text))


@pytest.mark.parametrize(
    "text, where, what",
    [
        (
            GOLDEN_TRACE.replace('"7"<|frame_sep|><|return_sep|>', '"7"<|return_sep|>', 1),
            "frame 10",
            "expected <|frame_sep|>",
        ),
        (GOLDEN_TRACE.replace('{"xs": "[2, 5]"}', '{"xs": ".."}'), "frame 2", "call frame"),
        (GOLDEN_TRACE.replace('{"xs": "..", "total": "0"}', '{"xs": "..", "total": ".."}'), "frame 4", "'total'"),
        (GOLDEN_TRACE.replace('{"xs": ".."}', '{"xs": ".."'), "frame 3", "not valid JSON"),
        (GOLDEN_TRACE.replace('"7"<|frame_sep|><|end', "7<|frame_sep|><|end"), "frame 11", "JSON string"),
        ("<|line_sep|>{}<|action_sep|>x\n<|frame_sep|>", "frame 0", "outside any scope"),
        (GOLDEN_TRACE + "more", "frame 12", "after <|end_of_text|>"),
        (
            GOLDEN_TRACE.replace('<|return_sep|><|action_sep|>    return g([2, 5])\n<|arg_sep|>"7"<|frame_sep|>', ""),
            "frame 11",
            "still running",
        ),
    ],
)
def test_validator_says_where_a_trace_breaks(text, where, what):
    problem = _broken(text)
    assert problem is not None and problem.startswith(where) and what in problem
    assert _broken(GOLDEN_TRACE) is None
