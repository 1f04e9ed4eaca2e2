"""CWM's neural debugger: the model predicts a program's execution one frame at a time, in CWM's trace
format, and the user steers it like pdb (CWM.md section 3.4).

Every request is the trace-prediction prompt (BOS, <|trace_context_start|>, the marked source,
<|frame_sep|>) followed by the frames so far; the model completes one frame, up to <|frame_sep|>. `step`
(after a call) forces <|line_sep|> so the model steps into the callee; `next` forces <|return_sep|> so it
predicts the callee's return value directly; `out` steps over calls until the current function returns.
A prediction that does not parse is kept aside as `Malformed` (shown, resampled on request), never
appended and never fatal.
"""

import ast
import dataclasses

from cwm_common.errors import CwmError
from cwm_data import special_tokens as st
from cwm_data import trace_format
from cwm_data.special_tokens import SpecialToken, special
from cwm_data.tokenizer import CwmTokenizer
from cwm_data.trace_frames import CALL, EXCEPTION, LINE, RETURN, Frame
from cwm_data.tracer import mark_entry
from cwm_jax.completion import Completer


@dataclasses.dataclass
class Malformed:
    text: str
    reason: str


@dataclasses.dataclass
class Finished:
    """The model ended the trace (<|end_of_text|>): execution left the entry point."""


class NeuralDebugger:
    def __init__(
        self,
        completer: Completer,
        tokenizer: CwmTokenizer,
        source: str,
        entry: str,
        args: list | None = None,
        kwargs: dict | None = None,
        temperature: float = 0.0,
        top_p: float = 0.95,
        max_frame_tokens: int = 2048,
        seed: int = 0,
    ):
        self.completer, self.tokenizer = completer, tokenizer
        self.temperature, self.top_p, self.max_frame_tokens, self.seed = temperature, top_p, max_frame_tokens, seed
        try:
            self.source, def_lineno = mark_entry(source, entry)
        except (LookupError, SyntaxError) as e:
            raise CwmError(f"debugger: {e}") from None
        self.frames: list[Frame] = []
        self.finished = False
        self._last: tuple[str | None, object] | None = None  # (forced token, result) of the latest request
        self.requests: list[list[str]] = []  # every prompt sent, as pieces (for inspection and tests)
        if args is not None or kwargs:
            # The user gave the arguments: the trace starts from a known call frame.
            names = _parameters(self.source, entry)
            bound = dict(zip(names, (repr(a) for a in args or []), strict=False))
            bound.update({k: repr(v) for k, v in (kwargs or {}).items()})
            # The call frame shows the def line unmarked, as traces do (the marker is in the context only).
            self.frames.append(Frame(CALL, source.splitlines(keepends=True)[def_lineno - 1], bound))

    # --- requests ---
    def _prefix(self, forced: str | None) -> list[str]:
        pieces = trace_format.prompt(self.source) + trace_format.render(self.frames, complete=False)
        return pieces + ([special(forced)] if forced else [])

    def predict(self, forced: str | None = None) -> Frame | Malformed | Finished:
        """Asks for the next frame (optionally starting with a forced event token) and appends it if valid."""
        result = self._predict(forced)
        self._last = (forced, result)
        return result

    def _predict(self, forced: str | None) -> Frame | Malformed | Finished:
        if self.finished:
            return Finished()
        prefix = self._prefix(forced)
        self.requests.append(prefix)
        stops = (self.tokenizer.special_id(st.FRAME_SEP), self.tokenizer.special_id(st.END_OF_TEXT))
        [out] = self.completer.complete(
            [self.tokenizer.encode_pieces(prefix)],
            self.max_frame_tokens,
            stops,
            self.temperature,
            self.top_p,
            self.seed + len(self.requests),
        )
        pieces = self.tokenizer.decode_pieces(out)
        if forced:
            pieces = [special(forced)] + pieces
        if pieces and pieces[-1] == st.END_OF_TEXT and isinstance(pieces[-1], SpecialToken) and len(pieces) == 1:
            self.finished = True
            return Finished()
        try:
            frames, _ = trace_format.parse(trace_format.render(self.frames, complete=False) + pieces)
        except trace_format.TraceFormatError as e:
            return Malformed(trace_format.to_text(pieces), str(e))
        if len(frames) != len(self.frames) + 1:
            return Malformed(trace_format.to_text(pieces), "the completion is not exactly one frame")
        self.frames.append(frames[-1])
        return frames[-1]

    # --- commands ---
    def step(self):
        """One frame; right after a call, into the callee (its first line)."""
        return self.predict(st.LINE_SEP if self.frames and self.frames[-1].event == CALL else None)

    def next(self):
        """One frame; a call into a callee is stepped over: the model predicts its return value directly."""
        result = self.predict()
        if isinstance(result, Frame) and result.event == CALL:
            return self.predict(st.RETURN_SEP)
        return result

    def out(self, max_frames: int = 200):
        """Frames until the current function returns (calls inside it are stepped over)."""
        results = []
        for _ in range(max_frames):
            result = self.predict()
            results.append(result)
            if isinstance(result, Frame) and result.event == CALL:
                results.append(self.predict(st.RETURN_SEP))  # step over the callee
                continue
            if not isinstance(result, Frame) or result.event in (RETURN, EXCEPTION):
                break
        return results

    def back(self) -> Frame | None:
        if self.frames:
            self.finished = False
            return self.frames.pop()
        return None

    def resample(self):
        """Predicts the latest request again with a new sampling seed (dropping its frame if it made one)."""
        forced, result = self._last if self._last else (None, None)
        if isinstance(result, Frame) and self.frames and self.frames[-1] is result:
            self.frames.pop()
        self.finished = False
        self.seed += 1000
        return self.predict(forced)

    def run_to_end(self, max_frames: int = 500):
        """Non-interactive: predicts the whole trace."""
        results = []
        for _ in range(max_frames):
            result = self.predict()
            results.append(result)
            if not isinstance(result, Frame):
                break
        return results

    def locals(self) -> dict[str, str]:
        """The resolved locals of the latest frame that has them."""
        return next((f.locals for f in reversed(self.frames) if f.locals is not None), {})


def _parameters(source: str, entry: str) -> list[str]:
    scope = ast.parse(source).body
    node = None
    for part in entry.split("."):
        node = next(n for n in scope if getattr(n, "name", None) == part)
        scope = getattr(node, "body", [])
    assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)), entry  # mark_entry checked it is a function
    return [a.arg for a in node.args.posonlyargs + node.args.args]


def describe(result) -> str:
    if isinstance(result, Finished):
        return "(end of trace: execution left the entry point)"
    if isinstance(result, Malformed):
        return f"malformed prediction ({result.reason}): {result.text[:200]!r}; 'r' resamples it"
    where = result.line.rstrip("\n")
    if result.event in (CALL, LINE):
        return f"{result.event:>9} | {where}"
    return f"{result.event:>9} | {where}  ->  {result.value}"
