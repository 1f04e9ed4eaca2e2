"""The CWM tracer: runs an entry point under sys.settrace and records frames with CWM's semantics.

- call: the function's `def` line, locals = its arguments; line: locals just before the line runs;
  return: the returned (or yielded) value; exception: the exception raised or passing through.
- Traced code: functions and methods defined in the traced source, from the entry point down to
  `max_depth` calls below it. Comprehensions, generator expressions, lambdas and class bodies are not
  scopes of their own (their line runs as one step of the enclosing function), as in Python 3.12+.
- A generator's `yield` is a return frame carrying the yielded value; resuming it is a new call frame.
- A frame left by an exception has no return frame: its last frame is an exception frame. Where Python
  reports none there (the exception re-raised at the end of a `finally` block), one is added on the line
  where the frame is left, so a reader always sees where a scope ends.
- Stops at `max_steps` frames or `timeout_s` seconds with a status saying which.

This runs the code in this process: untrusted code goes through `trace_runner.run_trace`, which runs this
in a separate, resource-limited process.
"""

import ast
import builtins
import dataclasses
import dis
import inspect
import io
import sys
import time
from collections.abc import Callable

from cwm_data.safe_repr import safe_repr
from cwm_data.trace_frames import (CALL, ERROR, EXCEPTION, EXCEPTION_EXIT, LINE, MEMORY_LIMIT, OK, RETURN,
                                   STEP_LIMIT, TIMEOUT, Frame, TraceResult)

START_MARKER = "  # << START_OF_TRACE"
FILENAME = "<cwm-trace>"
_NOT_SCOPES = {"<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>", "<lambda>"}
_YIELD = dis.opmap["YIELD_VALUE"]
_NORMAL_EXITS = {dis.opmap["RETURN_VALUE"], _YIELD}
# Values of these types never change in place: the same object means the same repr.
_IMMUTABLE = {int, float, complex, bool, str, bytes, type(None), range, type(Ellipsis)}
_CLOCK_EVERY = 64  # frames between wall-clock checks


@dataclasses.dataclass(frozen=True)
class TraceLimits:
    max_steps: int = 10_000
    timeout_s: float = 5.0
    memory_mb: int = 1024  # enforced by the runner's separate process
    max_repr_chars: int = 1000
    max_depth: int | None = None  # calls below the entry point that are traced; None = all

    @classmethod
    def from_json(cls, d: dict) -> "TraceLimits":
        return cls(**d)


class _Stop(BaseException):
    """Raised out of the trace function to abandon a run that hit a limit."""


def mark_entry(source: str, entry: str | None) -> tuple[str, int]:
    """The source with the entry's def line marked, and that line's number (line 1 for a whole program)."""
    lines = source.splitlines(keepends=True)
    lineno = 1 if entry is None else _def_lineno(ast.parse(source), entry)
    line = lines[lineno - 1]
    body, newline = (line[:-1], "\n") if line.endswith("\n") else (line, "")
    lines[lineno - 1] = body + START_MARKER + newline
    return "".join(lines), lineno


def _def_lineno(tree: ast.Module, entry: str) -> int:
    scope = tree.body
    for part in entry.split("."):
        node = next((n for n in scope if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                     and n.name == part), None)
        if node is None:
            raise LookupError(f"entry point '{entry}' is not defined in the source")
        scope = node.body
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        raise LookupError(f"entry point '{entry}' is a class, not a function")
    return node.lineno


def _def_lines(tree: ast.Module) -> dict[int, int]:
    """co_firstlineno (the first decorator's line) -> the def line, for every function in the source."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([d.lineno for d in node.decorator_list] + [node.lineno])
            out[first] = node.lineno
    return out


def _exit_status(exception: BaseException | None) -> str:
    if isinstance(exception, MemoryError):
        return MEMORY_LIMIT
    if isinstance(exception, SystemExit) and exception.code in (0, None):
        return OK  # a program that ends with sys.exit(0) ended normally
    return EXCEPTION_EXIT


class _Recorder:
    def __init__(self, lines: list[str], def_lines: dict[int, int], entry_code, limits: TraceLimits,
                 on_stop: Callable[[str], None]):
        # on_stop(status) runs when a limit ends the run; it may exit the process instead of returning.
        self.lines, self.def_lines, self.entry_code, self.limits = lines, def_lines, entry_code, limits
        self.on_stop = on_stop
        self.frames: list[Frame] = []
        self.linenos: list[int] = []
        self.status: str | None = None
        self.entry_frame = None
        self.depth: dict = {}  # active traced frame -> depth below the entry
        self.seen: dict = {}  # traced frame -> {name: (value, repr)} for the unchanged-value shortcut
        self.deadline = time.perf_counter() + limits.timeout_s
        self.entry_exception = None
        self.raising: dict = {}  # traced frame -> repr of the exception it last raised or passed on
        self.last_event: dict = {}  # traced frame -> the event of its latest frame

    def source_line(self, lineno: int) -> str:
        line = self.lines[lineno - 1] if 0 < lineno <= len(self.lines) else ""
        return line if line.endswith("\n") else line + "\n"

    def emit(self, event: str, lineno: int, locals_: dict | None = None, value: str | None = None):
        if len(self.frames) >= self.limits.max_steps:
            self.stop(STEP_LIMIT)
        if len(self.frames) % _CLOCK_EVERY == 0 and time.perf_counter() > self.deadline:
            self.stop(TIMEOUT)
        self.frames.append(Frame(event, self.source_line(lineno), locals_, value))
        self.linenos.append(lineno)

    def stop(self, status: str):
        self.status = status
        sys.settrace(None)
        self.on_stop(status)
        raise _Stop(status)

    def locals_of(self, frame) -> dict[str, str]:
        seen = self.seen.setdefault(frame, {})
        names = frame.f_locals
        if frame.f_code is self.entry_code and not frame.f_code.co_flags & inspect.CO_NEWLOCALS:
            names = {k: v for k, v in names.items() if not k.startswith("__") and not inspect.ismodule(v)}
        out = {}
        for name, value in names.items():
            previous = seen.get(name)
            if previous is not None and previous[0] is value and type(value) in _IMMUTABLE:
                out[name] = previous[1]
            else:
                text = safe_repr(value, self.limits.max_repr_chars)
                seen[name] = (value, text)
                out[name] = text
        return out

    def global_trace(self, frame, event, arg):
        code = frame.f_code
        if code.co_filename != FILENAME or self.status is not None:
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
        lineno = self.def_lines.get(code.co_firstlineno, code.co_firstlineno)
        self.emit(CALL, lineno, self.locals_of(frame))
        return self.local_trace

    def _depth_of(self, frame):
        caller = frame.f_back
        while caller is not None and caller not in self.depth:
            caller = caller.f_back
        return None if caller is None else self.depth[caller] + 1

    def local_trace(self, frame, event, arg):
        if self.status is not None:
            return None
        if event == LINE:
            self.emit(LINE, frame.f_lineno, self.locals_of(frame))
        elif event == EXCEPTION:
            if frame is self.entry_frame:
                self.entry_exception = arg[1]
            self.raising[frame] = safe_repr(arg[1], self.limits.max_repr_chars)
            self.emit(EXCEPTION, frame.f_lineno, value=self.raising[frame])
        elif event == RETURN:
            self.depth.pop(frame, None)
            opcode = frame.f_code.co_code[frame.f_lasti]
            last_event = self.last_event.pop(frame, None)
            if opcode != _YIELD:
                self.seen.pop(frame, None)  # a generator keeps its values across yields
            normal = opcode in _NORMAL_EXITS
            if normal:
                self.emit(RETURN, frame.f_lineno, value=safe_repr(arg, self.limits.max_repr_chars))
            elif last_event != EXCEPTION:  # left by an exception re-raised after a finally block
                self.emit(EXCEPTION, frame.f_lineno, value=self.raising.get(frame, "<unknown exception>"))
            self.raising.pop(frame, None)
            if frame is self.entry_frame:
                self.status = OK if normal else _exit_status(self.entry_exception)
                sys.settrace(None)
                return None
            return self.local_trace
        self.last_event[frame] = event
        return self.local_trace


def trace(source: str, entry: str | None, call_args: str = "", stdin: str | None = None,
          limits: TraceLimits = TraceLimits(),
          on_stop: Callable[[TraceResult], None] = lambda result: None) -> TraceResult:
    """Traces `entry(<call_args>)` (or the whole program when entry is None, reading `stdin`).

    `call_args` is Python source for an argument list, e.g. "[1, 2], key='a'", evaluated in the module.
    `on_stop(partial_result)` runs when a limit ends the run early (the separate-process runner reports
    and exits there, so code that swallows the stop cannot keep running).
    """
    start = time.perf_counter()

    def failed(message: str) -> TraceResult:
        return TraceResult(ERROR, [], [], source, error=message, seconds=time.perf_counter() - start)

    def result(status: str) -> TraceResult:
        return TraceResult(status, recorder.frames, recorder.linenos, marked, stdout=captured.getvalue(),
                           seconds=time.perf_counter() - start)

    try:
        marked, _ = mark_entry(source, entry)
        tree = ast.parse(marked)
        module_code = compile(marked, FILENAME, "exec")
    except (SyntaxError, LookupError, IndexError, ValueError) as e:
        return failed(f"{type(e).__name__}: {e}")
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    captured = io.StringIO()
    saved_io = sys.stdin, sys.stdout
    sys.stdin, sys.stdout = io.StringIO(stdin or ""), captured
    try:
        if entry is None:
            entry_code, run = module_code, lambda: exec(module_code, namespace)
        else:
            try:
                exec(module_code, namespace)
                target = namespace
                fn = None
                for part in entry.split("."):
                    fn = target[part] if isinstance(target, dict) else getattr(target, part)
                    target = fn
                args, kwargs = eval(f"(lambda *a, **k: (a, k))({call_args})", namespace)
            except BaseException as e:  # the module or the argument expression failed
                return failed(f"setup raised {type(e).__name__}: {e}")
            entry_code = inspect.unwrap(fn).__code__
            run = lambda: fn(*args, **kwargs)  # noqa: E731
        recorder = _Recorder(marked.splitlines(keepends=True), _def_lines(tree), entry_code, limits,
                             lambda status: on_stop(result(status)))
        raised = None
        sys.settrace(recorder.global_trace)
        try:
            run()
        except _Stop:
            pass
        except BaseException as e:  # the entry point raised: its frames already record it
            raised = e
        finally:
            sys.settrace(None)
    finally:
        sys.stdin, sys.stdout = saved_io
    if recorder.status is None:
        if recorder.entry_frame is None:
            return failed(f"entry point '{entry}' was never entered (is it a Python function of this source?)")
        # The trace function itself failed (Python then turns tracing off): the trace is incomplete.
        if isinstance(raised, MemoryError):
            return result(MEMORY_LIMIT)
        return TraceResult(ERROR, recorder.frames, recorder.linenos, marked,
                           error=f"tracing stopped by {type(raised).__name__}: {raised}",
                           seconds=time.perf_counter() - start)
    return result(recorder.status)
