"""The sys.settrace callbacks that turn execution into CWM frames (semantics in tracer.py's docstring)."""

import ast
import dis
import inspect
import operator
import sys
import time
from collections.abc import Callable

from cwm_data.inlined_comprehensions import INLINED, inside_comprehension
from cwm_data.safe_repr import safe_repr
from cwm_data.trace_frames import (
    CALL,
    EXCEPTION,
    EXCEPTION_EXIT,
    LINE,
    MEMORY_LIMIT,
    OK,
    RETURN,
    STEP_LIMIT,
    TIMEOUT,
    Frame,
    TraceLimits,
)

_NOT_SCOPES = {"<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>", "<lambda>"}
_YIELD = dis.opmap["YIELD_VALUE"]
# Python 3.12 returns a constant with its own opcode.
_NORMAL_EXITS = {dis.opmap[name] for name in ("RETURN_VALUE", "RETURN_CONST", "YIELD_VALUE") if name in dis.opmap}
# Values of these types never change in place: the same object means the same repr.
_IMMUTABLE = frozenset({int, float, complex, bool, str, bytes, type(None), range, type(Ellipsis)})
_IMMUTABLE_MARK = ()  # the snapshot of an immutable value: nothing to compare
_CLOCK_EVERY = 64  # frames between wall-clock checks
_SMALL_INT = 10**15  # ints this small are repr'd inline (at most 16 characters)


def _snapshot(value):
    """What it takes to tell later, cheaply and exactly, that a container is unchanged; None if it cannot.

    Containers of immutable values only: the same container holding the very same element objects in the
    same order has the same repr. The checks run at C speed (no Python loop over elements).
    """
    kind = type(value)
    if kind in (list, tuple, set, frozenset):
        return tuple(value) if set(map(type, value)) <= _IMMUTABLE else None
    if kind is dict and set(map(type, value)) <= _IMMUTABLE and set(map(type, value.values())) <= _IMMUTABLE:
        return tuple(value), tuple(value.values())
    return None


def _unchanged(value, snapshot) -> bool:
    if type(value) is dict:
        keys, values = snapshot
        return (
            len(value) == len(keys)
            and all(map(operator.is_, value, keys))
            and all(map(operator.is_, value.values(), values))
        )
    return len(value) == len(snapshot) and all(map(operator.is_, value, snapshot))


class Stop(BaseException):
    """Raised out of the trace function to abandon a run that hit a limit."""


class SourceFiles:
    """The files whose functions are traced: their lines (as shown in frames) and where each def line is."""

    def __init__(self):
        self._lines: dict[str, list[str]] = {}
        self._def_lines: dict[str, dict[int, int]] = {}
        self._numbered: dict[str, list[str]] = {}

    def add(self, filename: str, source: str):
        self._lines[filename] = source.splitlines(keepends=True)
        self._numbered.pop(filename, None)
        # co_firstlineno is the first decorator's line; frames show the def line.
        firsts = {}
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                firsts[min([d.lineno for d in node.decorator_list] + [node.lineno])] = node.lineno
        self._def_lines[filename] = firsts

    def __contains__(self, filename: str) -> bool:
        return filename in self._lines

    def marked(self, filename: str, lineno: int, marker: str) -> str:
        """The file's source with `marker` at the end of one line (the entry's def line in a prompt's context);
        frames keep showing the line unmarked."""
        lines = list(self._lines[filename])
        line = lines[lineno - 1]
        newline = "\n" if line.endswith("\n") else ""
        lines[lineno - 1] = line.removesuffix(newline) + marker + newline
        return "".join(lines)

    def source(self, filename: str) -> str:
        return "".join(self._lines[filename])

    def line(self, filename: str, lineno: int) -> str:
        lines = self._lines[filename]
        line = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
        return line if line.endswith("\n") else line + "\n"

    @property
    def numbered_lines(self) -> dict[str, list[str]]:
        """filename -> lines indexed by line number (entry 0 and one past the end are empty lines)."""
        for filename in self._lines:
            if filename not in self._numbered:
                n = len(self._lines[filename])
                self._numbered[filename] = [self.line(filename, i) for i in range(n + 2)]
        return self._numbered

    def def_line(self, code) -> int:
        return self._def_lines[code.co_filename].get(code.co_firstlineno, code.co_firstlineno)


def exit_status(exception: BaseException | None) -> str:
    if isinstance(exception, MemoryError):
        return MEMORY_LIMIT
    if isinstance(exception, SystemExit) and exception.code in (0, None):
        return OK  # a program that ends with sys.exit(0) ended normally
    return EXCEPTION_EXIT


class Recorder:
    """Records one entry point's call tree.

    standalone: the recorder owns sys.settrace (turns it off when done, raises Stop at a limit after
    calling on_stop). Otherwise a driver that traces many episodes calls global_trace itself, and a limit
    just ends this recording (status set, frames after it ignored).
    """

    def __init__(
        self,
        files: SourceFiles,
        entry_code,
        limits: TraceLimits,
        *,
        standalone: bool = True,
        on_stop: Callable[[str], None] = lambda status: None,
    ):
        self.files, self.entry_code, self.limits = files, entry_code, limits
        self.standalone, self.on_stop = standalone, on_stop
        self.events: list[tuple] = []  # (event, filename, lineno, locals, value); frames are built at the end
        self.status: str | None = None
        self.entry_frame = None
        self.entry_exception = None
        self.depth: dict = {}  # active traced frame -> depth below the entry
        self.seen: dict = {}  # traced frame -> {name: (value, repr, snapshot)} to skip unchanged values
        self.raising: dict = {}  # traced frame -> repr of the exception it last raised or passed on
        self.unwinding: set = set()  # traced frames whose latest frame is an exception frame
        self.deadline = time.perf_counter() + limits.timeout_s
        self.local_trace = self._make_local_trace()

    def emit(self, event: str, code, lineno: int, locals_: dict | None = None, value: str | None = None):
        n = len(self.events)
        if self.status is not None:
            return
        if n >= self.limits.max_steps:
            return self.stop(STEP_LIMIT)
        if n % _CLOCK_EVERY == 0 and time.perf_counter() > self.deadline:
            return self.stop(TIMEOUT)
        self.events.append((event, code.co_filename, lineno, locals_, value))

    @property
    def frames(self) -> list[Frame]:
        lines, make = self.files.numbered_lines, tuple.__new__  # tuple.__new__: Frame without the __new__ call
        return [
            make(Frame, (event, lines[filename][lineno], locals_, value))
            for event, filename, lineno, locals_, value in self.events
        ]

    @property
    def linenos(self) -> list[int]:
        return [e[2] for e in self.events]

    def stop(self, status: str):
        self.status = status
        if self.standalone:
            sys.settrace(None)
            self.on_stop(status)
            raise Stop(status)

    def locals_of(self, frame) -> dict[str, str]:
        """name -> repr, re-using the last repr of a value that provably has not changed (immutable and the
        same object, or a container of immutables holding the same objects). Runs for every traced line,
        so the common cases (unchanged values, small numbers and strings) are handled inline."""
        seen = self.seen.get(frame)
        if seen is None:
            seen = self.seen[frame] = {}
        names = frame.f_locals
        if not frame.f_code.co_flags & inspect.CO_NEWLOCALS:  # a whole program: its globals, minus plumbing
            names = {k: v for k, v in names.items() if not k.startswith("__") and not inspect.ismodule(v)}
        limit = self.limits.max_repr_chars
        short_str = limit // 10  # an escaped character takes at most 10: the repr fits the limit
        out = {}
        for name, value in names.items():
            previous = seen.get(name)
            if previous is not None and previous[0] is value:
                snapshot = previous[2]
                if snapshot is _IMMUTABLE_MARK or (snapshot is not None and _unchanged(value, snapshot)):
                    out[name] = previous[1]
                    continue
            kind = type(value)
            if (kind is int and -_SMALL_INT < value < _SMALL_INT and limit > 16) or (
                kind is str and len(value) <= short_str
            ):
                text, snapshot = repr(value), _IMMUTABLE_MARK
            else:
                text = safe_repr(value, limit)
                snapshot = _IMMUTABLE_MARK if kind in _IMMUTABLE else _snapshot(value)
            seen[name] = (value, text, snapshot)
            out[name] = text
        return out

    def global_trace(self, frame, event, arg):
        code = frame.f_code
        if code.co_filename not in self.files or self.status is not None:
            return None
        if self.entry_frame is None:
            if code is not self.entry_code:
                return None
            self.entry_frame, depth = frame, 0
        else:
            if code.co_name in _NOT_SCOPES or not code.co_flags & inspect.CO_OPTIMIZED:
                return None
            depth = self._depth_of(frame)
            if depth is None or (self.limits.max_depth is not None and depth > self.limits.max_depth):
                return None
        self.depth[frame] = depth
        self.emit(CALL, code, self.files.def_line(code), self.locals_of(frame))
        return self.local_trace

    def _depth_of(self, frame):
        caller = frame.f_back
        while caller is not None and caller not in self.depth:
            caller = caller.f_back
        return None if caller is None else self.depth[caller] + 1

    def _make_local_trace(self):
        """The per-frame trace function. Line events are the hot path (most events, run per executed line):
        they are handled inline with everything bound to closure variables."""
        events, append, unwinding = self.events, self.events.append, self.unwinding
        locals_of, other_event = self.locals_of, self._other_event
        max_steps = self.limits.max_steps

        def local_trace(frame, event, arg):
            if event != LINE:
                return other_event(frame, event, arg)
            if self.status is not None:
                return None
            if INLINED and inside_comprehension(frame.f_code, frame.f_lasti):
                return local_trace  # 3.11 ran this loop in a frame of its own, left out of traces
            n = len(events)
            if n >= max_steps or not n % _CLOCK_EVERY:
                self.emit(LINE, frame.f_code, frame.f_lineno, locals_of(frame))  # with the limit checks
            else:
                append((LINE, frame.f_code.co_filename, frame.f_lineno, locals_of(frame), None))
            if unwinding:
                unwinding.discard(frame)
            return local_trace

        return local_trace

    def _other_event(self, frame, event, arg):
        if self.status is not None:
            return None
        code = frame.f_code
        if event == EXCEPTION:
            if frame is self.entry_frame:
                self.entry_exception = arg[1]
            self.raising[frame] = safe_repr(arg[1], self.limits.max_repr_chars)
            self.emit(EXCEPTION, code, frame.f_lineno, value=self.raising[frame])
            self.unwinding.add(frame)
        elif event == RETURN:
            self.depth.pop(frame, None)
            opcode = code.co_code[frame.f_lasti]
            was_unwinding = frame in self.unwinding
            self.unwinding.discard(frame)
            if opcode != _YIELD:
                self.seen.pop(frame, None)  # a generator keeps its values across yields
            normal = opcode in _NORMAL_EXITS
            if normal:
                self.emit(RETURN, code, frame.f_lineno, value=safe_repr(arg, self.limits.max_repr_chars))
            elif not was_unwinding:  # left by an exception re-raised after a finally block
                self.emit(EXCEPTION, code, frame.f_lineno, value=self.raising.get(frame, "<unknown exception>"))
            self.raising.pop(frame, None)
            if frame is self.entry_frame and self.status is None:
                self.status = OK if normal else exit_status(self.entry_exception)
                if self.standalone:
                    sys.settrace(None)
                return None
        return self.local_trace
