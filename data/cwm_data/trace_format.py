"""Frames <-> CWM trace token text, the trace-prediction prompt, and a validator.

A frame in token text (CWM.md section 3.1):
    call       <|call_sep|> LOCALS <|action_sep|> LINE <|frame_sep|>
    line       <|line_sep|> LOCALS <|action_sep|> LINE <|frame_sep|>
    return     <|return_sep|><|action_sep|> LINE <|arg_sep|> VALUE <|frame_sep|>
    exception  <|exception_sep|><|action_sep|> LINE <|arg_sep|> VALUE <|frame_sep|>
and a complete trace ends with <|end_of_text|>. LOCALS is a JSON object of repr strings, VALUE a JSON
string.

".." in a line frame stands for an unchanged value, resolved as the release's reader does (demos/cwmdbg.py,
`CWMDebugger.local_vars`): walk back through the earlier frames in trace order, taking the first value
written for that name (a frame without the name, or with "..", passes); a call frame is consulted and then
ends the walk, a return frame ends it, exception frames are passed through. So after a callee returns, the
caller's values are written out again. The writer writes ".." only where this rule gives the true value,
so parse(render(frames)) == frames always holds.

Scopes, for checking a trace's structure: a call opens one, a return closes it, an exception frame closes the
scope before it when that scope was itself unwinding (an exception frame with no line frame since).

Token text is a list of pieces: SpecialToken pieces are special tokens, plain str pieces ordinary text.
"""

import json
from typing import NoReturn

from cwm_data import special_tokens as st
from cwm_data.special_tokens import SpecialToken, special
from cwm_data.trace_frames import CALL, EXCEPTION, LINE, RETURN, Frame

UNCHANGED = ".."
_EVENT_TOKEN = {CALL: st.CALL_SEP, LINE: st.LINE_SEP, RETURN: st.RETURN_SEP, EXCEPTION: st.EXCEPTION_SEP}
_TOKEN_EVENT = {v: k for k, v in _EVENT_TOKEN.items()}


class TraceFormatError(ValueError):
    """A malformed trace; `piece` is the index of the piece where it goes wrong, `frame` the frame index."""

    def __init__(self, message: str, piece: int, frame: int):
        super().__init__(f"frame {frame} (piece {piece}): {message}")
        self.piece, self.frame = piece, frame


class _Scopes:
    """Which scopes are open, for checking a trace's structure (see the module docstring)."""

    def __init__(self):
        self.unwinding: list[bool] = []  # per open scope: an exception frame came, and no line frame since

    def enter(self):
        self.unwinding.append(False)

    def line(self) -> bool:
        if not self.unwinding:
            return False
        self.unwinding[-1] = False
        return True

    def leave(self) -> bool:
        if not self.unwinding:
            return False
        self.unwinding.pop()
        return True

    def exception(self) -> bool:
        if self.unwinding and self.unwinding[-1]:
            self.unwinding.pop()
        if not self.unwinding:
            return False
        self.unwinding[-1] = True
        return True

    @property
    def finished(self) -> bool:
        """Whether <|end_of_text|> may come now: the entry returned, or an exception is leaving it."""
        return not self.unwinding or self.unwinding[-1]


def resolve_unchanged(written: list[tuple[str, dict]], name: str) -> str | None:
    """The value ".." stands for in the next frame, by the release's rule, given the frames so far as
    written ((event, locals as written)); None when the rule finds none."""
    for event, shown in reversed(written):
        value = shown.get(name, UNCHANGED)
        if value != UNCHANGED:
            return value
        if event in (CALL, RETURN):
            return None
    return None


def prompt(marked_source: str) -> list[str]:
    """The trace-prediction prompt: BOS, <|trace_context_start|>, the source, <|frame_sep|>."""
    return [special(st.BEGIN_OF_TEXT), special(st.TRACE_CONTEXT_START), marked_source, special(st.FRAME_SEP)]


def render(frames: list[Frame], complete: bool) -> list[str]:
    """Frames as token-text pieces; a complete trace ends with <|end_of_text|>.

    Raises TraceFormatError for frames that no reader could place (a frame outside any scope, an event
    that is not one of the four), so rendering also validates the structure.
    """
    pieces: list[str] = []
    scopes = _Scopes()
    written: list[tuple[str, dict]] = []
    for k, frame in enumerate(frames):
        if frame.event not in _EVENT_TOKEN:
            raise TraceFormatError(f"unknown event {frame.event!r}", len(pieces), k)
        if k and not scopes.unwinding:
            raise TraceFormatError("frame after the entry point returned", len(pieces), k)
        pieces.append(special(_EVENT_TOKEN[frame.event]))
        if frame.event == CALL:
            if frame.locals is None:
                raise TraceFormatError("call frame without locals", len(pieces), k)
            scopes.enter()
            written.append((CALL, frame.locals))
            pieces += [json.dumps(frame.locals), special(st.ACTION_SEP), frame.line]
        elif frame.event == LINE:
            if frame.locals is None:
                raise TraceFormatError("line frame without locals", len(pieces), k)
            if not scopes.line():
                raise TraceFormatError("line frame outside any scope", len(pieces), k)
            shown = {
                name: UNCHANGED if value != UNCHANGED and resolve_unchanged(written, name) == value else value
                for name, value in frame.locals.items()
            }
            written.append((LINE, shown))
            pieces += [json.dumps(shown), special(st.ACTION_SEP), frame.line]
        else:
            if not (scopes.leave() if frame.event == RETURN else scopes.exception()):
                raise TraceFormatError(f"{frame.event} frame outside any scope", len(pieces), k)
            written.append((frame.event, {}))
            pieces += [special(st.ACTION_SEP), frame.line, special(st.ARG_SEP), json.dumps(frame.value)]
        pieces.append(special(st.FRAME_SEP))
    if complete:
        if not scopes.finished:
            raise TraceFormatError("complete trace whose entry point is still running", len(pieces), len(frames))
        pieces.append(special(st.END_OF_TEXT))
    return pieces


def to_text(pieces: list[str]) -> str:
    return "".join(pieces)


def split_text(text: str) -> list[str]:
    """Pieces of a plain string, treating every special-token spelling as the special token."""
    pieces, i = [], 0
    names = sorted(st.NAMED_OFFSETS, key=len, reverse=True)
    while i < len(text):
        j = text.find("<|", i)
        if j < 0:
            pieces.append(text[i:])
            break
        name = next((n for n in names if text.startswith(n, j)), None)
        if name is None:
            end = text.find("<|", j + 2)
            pieces.append(text[i:] if end < 0 else text[i:end])
            i = len(text) if end < 0 else end
            continue
        if j > i:
            pieces.append(text[i:j])
        pieces.append(special(name))
        i = j + len(name)
    return _merge_text(pieces)


def _merge_text(pieces: list[str]) -> list[str]:
    out: list[str] = []
    for p in pieces:
        if out and not isinstance(p, SpecialToken) and not isinstance(out[-1], SpecialToken):
            out[-1] += p
        else:
            out.append(p)
    return out


def parse(pieces: list[str]) -> tuple[list[Frame], bool]:
    """Frames (with ".." resolved) and whether the trace is complete; TraceFormatError says where not."""
    frames: list[Frame] = []
    scopes = _Scopes()
    written: list[tuple[str, dict]] = []
    pieces = _merge_text(pieces)
    i, n = 0, len(pieces)

    def fail(message: str) -> NoReturn:
        raise TraceFormatError(message, min(i, n), len(frames))

    def expect_special(name: str):
        nonlocal i
        if i >= n or pieces[i] != name or not isinstance(pieces[i], SpecialToken):
            fail(f"expected {name}, got {_describe(pieces, i)}")
        i += 1

    def take_text(what: str) -> str:
        nonlocal i
        if i >= n or isinstance(pieces[i], SpecialToken):
            fail(f"expected {what}, got {_describe(pieces, i)}")
        i += 1
        return pieces[i - 1]

    def json_of(what: str, text: str):
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            fail(f"{what} is not valid JSON ({e.msg} at char {e.pos})")

    while i < n:
        token = pieces[i]
        if token == st.END_OF_TEXT and isinstance(token, SpecialToken):
            if not scopes.finished:
                fail("<|end_of_text|> while the entry point is still running")
            if i != n - 1:
                i += 1
                fail("text after <|end_of_text|>")
            return frames, True
        if not isinstance(token, SpecialToken) or token not in _TOKEN_EVENT:
            fail(f"expected a frame's event token, got {_describe(pieces, i)}")
        if frames and scopes.finished and not scopes.unwinding:
            fail("frame after the entry point returned")
        event = _TOKEN_EVENT[token]
        i += 1
        if event in (CALL, LINE):
            shown = json_of("locals", take_text("locals JSON"))
            if not isinstance(shown, dict) or not all(isinstance(v, str) for v in shown.values()):
                fail("locals must be a JSON object of strings")
            expect_special(st.ACTION_SEP)
            line = take_text("a source line")
            if event == CALL:
                if UNCHANGED in shown.values():
                    fail('".." in a call frame (a new scope has no earlier values)')
                scopes.enter()
                resolved = shown
            else:
                if not scopes.line():
                    fail("line frame outside any scope")
                resolved = {}
                for name, value in shown.items():
                    found = resolve_unchanged(written, name) if value == UNCHANGED else value
                    if found is None:
                        fail(f'".." for {name!r}, which no earlier frame since the last call or return gives')
                    resolved[name] = found
            written.append((event, shown))
            frame = Frame(event, line, resolved)
        else:
            expect_special(st.ACTION_SEP)
            line = take_text("a source line")
            expect_special(st.ARG_SEP)
            value = json_of("value", take_text("a value"))
            if not isinstance(value, str):
                fail("the value must be a JSON string")
            if not (scopes.leave() if event == RETURN else scopes.exception()):
                fail(f"{event} frame outside any scope")
            written.append((event, {}))
            frame = Frame(event, line, None, value)
        expect_special(st.FRAME_SEP)
        frames.append(frame)
    return frames, False


def _describe(pieces: list[str], i: int) -> str:
    if i >= len(pieces):
        return "the end of the trace"
    kind = "special token" if isinstance(pieces[i], SpecialToken) else "text"
    return f"{kind} {pieces[i][:40]!r}"


def validate(pieces: list[str]) -> str | None:
    """None for a well-formed trace, else where and how it goes wrong."""
    try:
        parse(pieces)
    except TraceFormatError as e:
        return str(e)
    return None
