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

This runs the code in this process: code nobody has read goes through `sandboxed_tracer`, which runs this
in a sandboxed trace server, each trace in a forked child with its own limits.
"""

import ast
import builtins
import inspect
import io
import sys
import time
from collections.abc import Callable
from typing import Any

from cwm_data.trace_frames import ERROR, MEMORY_LIMIT, TraceLimits, TraceResult
from cwm_data.trace_recorder import Recorder, SourceFiles, Stop

START_MARKER = "  # << START_OF_TRACE"
FILENAME = "<cwm-trace>"


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
        node = next(
            (
                n
                for n in scope
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == part
            ),
            None,
        )
        if node is None:
            raise LookupError(f"entry point '{entry}' is not defined in the source")
        scope = node.body
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        raise LookupError(f"entry point '{entry}' is a class, not a function")
    return node.lineno


def trace(
    source: str,
    entry: str | None,
    call_args: str = "",
    stdin: str | None = None,
    limits: TraceLimits = TraceLimits(),
    on_stop: Callable[[TraceResult], None] = lambda result: None,
) -> TraceResult:
    """Traces `entry(<call_args>)` (or the whole program when entry is None, reading `stdin`).

    `call_args` is Python source for an argument list, e.g. "[1, 2], key='a'", evaluated in the module.
    `on_stop(partial_result)` runs when a limit ends the run early (the separate-process runner reports
    and exits there, so code that swallows the stop cannot keep running).
    """
    start = time.perf_counter()

    def failed(message: str) -> TraceResult:
        return TraceResult(ERROR, [], [], source, error=message, seconds=time.perf_counter() - start)

    def result(status: str) -> TraceResult:
        return TraceResult(
            status,
            recorder.frames,
            recorder.linenos,
            marked,
            stdout=captured.getvalue(),
            seconds=time.perf_counter() - start,
        )

    try:
        marked, _ = mark_entry(source, entry)
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
                fn: Any = None  # whatever the entry's dotted name resolves to
                for part in entry.split("."):
                    fn = target[part] if isinstance(target, dict) else getattr(target, part)
                    target = fn
                args, kwargs = eval(f"(lambda *a, **k: (a, k))({call_args})", namespace)
            except BaseException as e:  # the module or the argument expression failed
                return failed(f"setup raised {type(e).__name__}: {e}")
            entry_code = inspect.unwrap(fn).__code__

            def run():
                return fn(*args, **kwargs)

        files = SourceFiles()
        files.add(FILENAME, source)  # frames show the entry's def line unmarked, as the release's traces do
        recorder = Recorder(files, entry_code, limits, on_stop=lambda status: on_stop(result(status)))
        raised = None
        sys.settrace(recorder.global_trace)
        try:
            run()
        except Stop:
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
        return TraceResult(
            ERROR,
            recorder.frames,
            recorder.linenos,
            marked,
            error=f"tracing stopped by {type(raised).__name__}: {raised}",
            seconds=time.perf_counter() - start,
        )
    return result(recorder.status)
