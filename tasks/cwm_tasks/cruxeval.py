"""CRUXEval output prediction (800 functions with an input; MIT, copied to data/benchmarks/cruxeval): the
model predicts f(input), directly (it completes `assert f(input) == `) or via a predicted trace of a main()
that calls f (the trace's last return value). A prediction is right when it equals f(input): both are read
as Python literals on the host, so nothing the model wrote runs (executing `assert f(input) == PREDICTION`
would let `__import__('os')._exit(0)` pass)."""

import ast
import random

from cwm_common.jsonl import read_jsonl
from cwm_common.repo_paths import CRUXEVAL
from cwm_data import special_tokens as st
from cwm_data import trace_format
from cwm_data.special_tokens import SpecialToken, special
from cwm_data.tracer import mark_entry
from cwm_tasks.reward_result import FAIL, PASS, RewardResult
from cwm_tasks.task import Prompt


def load_cruxeval() -> list[dict]:
    """[{"id", "code", "input", "output"}]."""
    return read_jsonl(CRUXEVAL)


def direct_prompt(sample: dict) -> str:
    return f"{sample['code']}\nassert f({sample['input']}) == "


def trace_source(sample: dict) -> str:
    """The function plus a main() calling it, the entry point of the predicted trace."""
    return f"{sample['code']}\n\ndef main():\n    return f({sample['input']})\n"


def direct_pieces(sample: dict) -> list[str]:
    return [special(st.BEGIN_OF_TEXT), direct_prompt(sample)]


def trace_pieces(sample: dict) -> list[str]:
    return trace_format.prompt(mark_entry(trace_source(sample), "main")[0])


def direct_answer(completion: str) -> str:
    """The predicted value: the completion's first line."""
    return completion.split("\n")[0].strip()


def trace_answer(pieces: list[str]) -> str | None:
    """The value of the last return frame of a predicted trace, read up to where it stops parsing, or None."""
    try:
        frames, _ = trace_format.parse(pieces)
    except trace_format.TraceFormatError as e:
        ends = [i for i, p in enumerate(pieces[: e.piece]) if p == st.FRAME_SEP and isinstance(p, SpecialToken)]
        try:
            frames, _ = trace_format.parse(pieces[: ends[-1] + 1]) if ends else ([], False)
        except trace_format.TraceFormatError:
            frames = []
    returns = [f.value for f in frames if f.event == "return"]
    return returns[-1] if returns else None


MAX_PREDICTION_CHARS = 10_000


def prediction_matches(sample: dict, predicted: str) -> bool:
    """Whether the predicted literal equals the sample's output (every CRUXEval output is a literal)."""
    if len(predicted) > MAX_PREDICTION_CHARS:
        return False
    try:
        return ast.literal_eval(predicted) == ast.literal_eval(sample["output"])
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False


class CruxevalTask:
    """Direct output prediction as a graded task (RL; the eval also scores predictions via traces)."""

    name, multi_turn, needs_sandbox, stops = "cruxeval", False, False, (st.END_OF_TEXT,)

    def __init__(self):
        self.samples = load_cruxeval()
        self._by_id = {s["id"]: s for s in self.samples}

    def prompt(self, sample: dict) -> Prompt:
        return Prompt(self.name, direct_pieces(sample), {"id": sample["id"]})

    def prompts(self) -> list[Prompt]:
        return [self.prompt(s) for s in self.samples]

    def draw(self, rng: random.Random) -> Prompt:
        return self.prompt(rng.choice(self.samples))

    def grade(self, sandbox, completion: str, meta: dict) -> RewardResult:
        answer = direct_answer(completion)
        if not answer:
            return RewardResult(FAIL, "no_answer")
        ok = prediction_matches(self._by_id[meta["id"]], answer)
        return RewardResult(PASS if ok else FAIL, "passed" if ok else "failed", log=f"predicted {answer[:200]}")
