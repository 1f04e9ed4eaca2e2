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
# CWM.md section 3.2, written out by hand from the format specification; the entry's call frame shows its
# def line unmarked (the marker is in the context only), as the release's debugger reads and shows it.
GOLDEN_TRACE = (
    "<|call_sep|>{}<|action_sep|>def main():\n<|frame_sep|>"
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


RELEASE_DOTS_CASES = {
    "nested calls": (
        "def g(a):\n    b = a * 2\n    return b + 1\n\ndef f(x):\n    y = g(x)\n    z = g(y)\n    return x + y + z\n",
        "f",
        "3",
    ),
    "a callee raising into a catching caller": (
        "def g(x):\n    x = 5\n    raise ValueError(x)\n\n"
        "def f(x):\n    y = 1\n    try:\n        g(x)\n    except ValueError:\n        y = y + x\n    return x, y\n",
        "f",
        "0",
    ),
    "a generator": (
        "def gen(n):\n    for i in range(n):\n        yield i * i\n\n"
        "def f(n):\n    total = 0\n    for v in gen(n):\n        total += v\n    return total\n",
        "f",
        "3",
    ),
    "methods": (
        "class Acc:\n    def __init__(self):\n        self.items = []\n\n"
        "    def add(self, v):\n        self.items.append(v)\n        return len(self.items)\n\n"
        "def f(xs):\n    acc = Acc()\n    n = 0\n    for x in xs:\n        n = acc.add(x)\n    return n\n",
        "f",
        "[4, 5]",
    ),
    "recursion": (
        "def fact(n):\n    if n <= 1:\n        return 1\n    rest = fact(n - 1)\n    return n * rest\n",
        "fact",
        "4",
    ),
}


def release_reader_locals(pieces) -> list[dict | None]:
    """Every frame's locals as the release's debugger resolves them (demos/cwmdbg.py: walk back in trace
    order; a missing name or ".." passes; a call frame is consulted, then stops the walk; a return frame stops
    it; exception frames pass); written separately from trace_format's reader on purpose."""
    events = {
        "<|call_sep|>": "call",
        "<|line_sep|>": "line",
        "<|return_sep|>": "return",
        "<|exception_sep|>": "exception",
    }
    written: list[tuple[str, dict]] = []
    text = tf.to_text(pieces).removesuffix("<|end_of_text|>")
    for chunk in filter(None, text.split("<|frame_sep|>")):
        token = chunk[: chunk.index("|>") + 2]
        body = chunk[len(token) :].split("<|action_sep|>")[0]
        written.append((events[token], json.loads(body) if body else {}))
    resolved: list[dict | None] = []
    for k, (event, shown) in enumerate(written):
        if event in ("return", "exception"):
            resolved.append(None)
            continue
        values = dict(shown)
        for name, value in shown.items():
            if value != "..":
                continue
            for earlier_event, earlier in reversed(written[:k]):
                if earlier.get(name, "..") != "..":
                    values[name] = earlier[name]
                    break
                if earlier_event in ("call", "return"):
                    break
        resolved.append(values)
    return resolved


@pytest.mark.parametrize("case", list(RELEASE_DOTS_CASES))
def test_the_release_reader_recovers_every_local(case):
    source, entry, args = RELEASE_DOTS_CASES[case]
    result = trace(source, entry, args)
    assert result.complete, result.error
    pieces = tf.render(result.frames, True)
    assert '".."' in tf.to_text(pieces)  # the convention is in use, not avoided
    for frame, seen in zip(result.frames, release_reader_locals(pieces), strict=True):
        assert seen == frame.locals, (case, frame)
    assert tf.parse(pieces) == (result.frames, True)


def test_values_are_written_again_after_a_callee_returns():
    source, entry, args = RELEASE_DOTS_CASES["nested calls"]
    text = tf.to_text(tf.render(trace(source, entry, args).frames, True))
    after_return = text.split('<|return_sep|><|action_sep|>    return b + 1\n<|arg_sep|>"7"<|frame_sep|>')[1]
    assert after_return.startswith('<|line_sep|>{"x": "3", "y": "7"}')
    with pytest.raises(tf.TraceFormatError, match="which no earlier frame since the last call or return gives"):
        tf.parse(tf.split_text(text.replace('{"x": "3", "y": "7"}', '{"x": "..", "y": "7"}', 1)))
