"""The neural debugger: well-formed requests for step/next/out (scripted fake model and a tiny real one)."""

import json
import pathlib

import pytest
from flax import nnx

import cwm_jax
from cwm_data import special_tokens as st
from cwm_data import trace_format
from cwm_data.special_tokens import SpecialToken
from cwm_data.tokenizer import train_sentencepiece
from cwm_data.trace_frames import CALL, RETURN
from cwm_data.tracer import trace
from cwm_jax.completion import ModelCompleter
from cwm_jax.debugger import Finished, Malformed, NeuralDebugger

SOURCE = (
    "def g(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total\n\n"
    "def main(xs):\n    s = g(xs)\n    return s * 2\n"
)
CODE = [
    json.loads(line)["code"]
    for line in (pathlib.Path(__file__).parents[1] / "data/benchmarks/cruxeval/cruxeval.jsonl").read_text().splitlines()
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return train_sentencepiece(CODE + [SOURCE] * 5, 768, str(tmp_path_factory.mktemp("tok") / "t.model"))


class ScriptedModel:
    """An oracle: answers each request with what really happens next in a traced run (a forced
    <|return_sep|> gets the return of the callee just entered; the forced token is not repeated)."""

    def __init__(self, tokenizer, frames):
        self.tokenizer, self.frames = tokenizer, frames
        self.requests = []

    def complete(self, prompts, max_new_tokens, stop_tokens=(), temperature=0.0, top_p=1.0, seed=0):
        pieces = self.tokenizer.decode_pieces(prompts[0])
        self.requests.append(pieces)
        context, _ = trace_format.parse(_after_prompt(pieces, drop_forced=True))
        at = -1
        for frame in context:  # the context is a subsequence of the real run (stepped-over calls skipped)
            at = self.frames.index(frame, at + 1)
        nxt = at + 1
        if _forced(pieces) and pieces[-1] == st.RETURN_SEP:
            depth = 1
            while depth:
                depth += {CALL: 1, RETURN: -1}.get(self.frames[nxt].event, 0)
                nxt += depth > 0
        if nxt >= len(self.frames):
            return [[self.tokenizer.special_id(st.END_OF_TEXT)]]
        answer = trace_format.render(context + [self.frames[nxt]], False)[len(trace_format.render(context, False)) :]
        return [self.tokenizer.encode_pieces(answer[1:] if _forced(pieces) else answer)]


def _after_prompt(pieces, drop_forced=False):
    start = [i for i, p in enumerate(pieces) if p == st.FRAME_SEP and isinstance(p, SpecialToken)][0] + 1
    rest = pieces[start:]
    return rest[:-1] if drop_forced and _forced(pieces) else rest


def _forced(pieces):
    return isinstance(pieces[-1], SpecialToken) and pieces[-1] != st.FRAME_SEP


def test_scripted_model_drives_step_next_out_and_back(tokenizer):
    real = trace(SOURCE, "main", "[2, 5]")
    model = ScriptedModel(tokenizer, real.frames)
    debugger = NeuralDebugger(model, tokenizer, SOURCE, "main", args=[[2, 5]])
    assert debugger.frames == real.frames[:1]  # the given arguments start the trace
    assert debugger.step() == real.frames[1]  # into main's first line (forced <|line_sep|>)
    assert model.requests[-1][-1] == st.LINE_SEP
    assert model.requests[-1][:4] == trace_format.prompt(real.source)  # BOS, context start, source, frame_sep
    # `next` on `s = g(xs)`: the call into g is predicted, then g's return value is asked for directly.
    result = debugger.next()
    assert model.requests[-1][-1] == st.RETURN_SEP and result.event == RETURN
    assert debugger.frames[-2].event == CALL and "def g" in debugger.frames[-2].line
    back = debugger.back()
    assert back is not None and back.event == RETURN
    assert debugger.locals() == {"xs": "[2, 5]"}
    # A fresh session stepping `out` of main ends at main's return.
    fresh = NeuralDebugger(ScriptedModel(tokenizer, real.frames), tokenizer, SOURCE, "main", args=[[2, 5]])
    results = fresh.out()
    assert results[-1].event == RETURN and results[-1].value == "14"
    assert isinstance(fresh.predict(), Finished)


def test_full_prediction_reproduces_an_oracle_trace_and_malformed_output_is_kept_aside(tokenizer):
    real = trace(SOURCE, "main", "[1, 2, 3]")
    debugger = NeuralDebugger(ScriptedModel(tokenizer, real.frames), tokenizer, SOURCE, "main")
    results = debugger.run_to_end()
    assert debugger.frames == real.frames and isinstance(results[-1], Finished)

    class Garbage:
        def complete(self, prompts, *args, **kwargs):
            return [tokenizer.encode_pieces(['{"xs": ', SpecialToken(st.FRAME_SEP)])]

    broken = NeuralDebugger(Garbage(), tokenizer, SOURCE, "main", args=[[1]])
    result = broken.step()
    assert isinstance(result, Malformed) and "not valid JSON" in result.reason
    assert len(broken.frames) == 1  # nothing appended; the session goes on
    assert isinstance(broken.resample(), Malformed)


def test_tiny_real_model_never_crashes_the_session(tokenizer):
    model = cwm_jax.CwmModel(cwm_jax.from_preset("cwm-tiny", max_seq_len=512), nnx.Rngs(0))
    debugger = NeuralDebugger(ModelCompleter(model), tokenizer, SOURCE, "main", args=[[1, 2]], max_frame_tokens=40)
    for command in (debugger.step, debugger.next, debugger.resample, debugger.step):
        command()  # whatever a random model says, the session survives it
    assert len(debugger.requests) >= 4
    for request in debugger.requests:
        assert request[:4] == trace_format.prompt(debugger.source)
        frames, complete = trace_format.parse(_after_prompt(request, drop_forced=True))
        assert not complete and frames[0].event == CALL
