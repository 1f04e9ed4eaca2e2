"""Repository-level traces: run a repo's pytest suite and cut its execution into function-level episodes.

Every call from test code (or pytest) into a function of the repository's own modules starts an episode:
that function is the entry point, its def line is marked, and its call tree is traced `max_depth` calls
deep (deeper calls run untraced, stepped over). Each episode is one TraceResult whose source is the entry's
module. At most `max_episodes_per_function` distinct episodes are kept per function.

Runs inside the trace server's sandbox (sandboxed_tracer.trace_test_suite), against the repo's own environment.
"""

import hashlib
import inspect
import json
import os
import sys
import time

from cwm_data.trace_frames import COMPLETE, TraceLimits, TraceResult
from cwm_data.trace_recorder import Recorder, SourceFiles
from cwm_data.tracer import START_MARKER

_NOT_SCOPES = {"<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>", "<lambda>", "<module>"}


def is_test_file(path: str) -> bool:
    name = os.path.basename(path)
    parts = path.split(os.sep)
    return name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py" or "tests" in parts


def library_files(repo_dir: str) -> list[str]:
    out = []
    for root, dirs, files in os.walk(repo_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in ("build", "dist", "__pycache__"))
        out += [os.path.join(root, f) for f in sorted(files) if f.endswith(".py")]
    return [p for p in out if not is_test_file(os.path.relpath(p, repo_dir))]


class EpisodeDriver:
    """The global trace function: starts an episode at each call into library code from outside it."""

    def __init__(self, files: SourceFiles, limits: TraceLimits, max_episodes_per_function: int):
        self.files, self.limits, self.max_per_function = files, limits, max_episodes_per_function
        self.active: Recorder | None = None
        self.active_source = ""
        self.episodes: list[TraceResult] = []
        self.per_function: dict[tuple, int] = {}
        self.fingerprints: set[str] = set()
        self.dropped: dict[str, int] = {}

    def __call__(self, frame, event, arg):
        if self.active is not None:
            if self.active.status is None:
                return self.active.global_trace(frame, event, arg)
            self.finish()
        code = frame.f_code
        if (
            code.co_filename not in self.files
            or code.co_name in _NOT_SCOPES
            or not code.co_flags & inspect.CO_OPTIMIZED
        ):
            return None
        caller = frame.f_back
        if caller is not None and caller.f_code.co_filename in self.files:
            return None  # called from library code that is itself not being traced
        key = (code.co_filename, code.co_firstlineno)
        if self.per_function.get(key, 0) >= self.max_per_function:
            return None
        self.active = Recorder(self.files, code, self.limits, standalone=False)
        self.active_source = self.files.marked(code.co_filename, self.files.def_line(code), START_MARKER)
        return self.active.global_trace(frame, event, arg)

    def finish(self):
        recorder, self.active = self.active, None
        if recorder is None or recorder.status is None:
            return
        if recorder.status not in COMPLETE:
            self.dropped[recorder.status] = self.dropped.get(recorder.status, 0) + 1
            return
        frames = recorder.frames
        fingerprint = hashlib.sha1(json.dumps([f.to_json() for f in frames]).encode()).hexdigest()
        if fingerprint in self.fingerprints:
            self.dropped["duplicate"] = self.dropped.get("duplicate", 0) + 1
            return
        self.fingerprints.add(fingerprint)
        key = (recorder.entry_code.co_filename, recorder.entry_code.co_firstlineno)
        self.per_function[key] = self.per_function.get(key, 0) + 1
        self.episodes.append(TraceResult(recorder.status, frames, recorder.linenos, self.active_source))


def trace_test_suite(
    repo_dir: str, test_args: list[str], limits: TraceLimits, max_episodes_per_function: int = 5
) -> tuple[list[TraceResult], dict[str, int], int]:
    """(episodes, dropped counts by reason, pytest's exit code), running pytest in this process."""
    import pytest

    repo_dir = os.path.abspath(repo_dir)
    files = SourceFiles()
    for path in library_files(repo_dir):
        with open(path) as f:
            files.add(path, f.read())
    driver = EpisodeDriver(files, limits, max_episodes_per_function)
    sys.path.insert(0, repo_dir)
    os.chdir(repo_dir)
    sys.dont_write_bytecode = True
    start = time.perf_counter()
    sys.settrace(driver)
    try:
        exit_code = pytest.main(["-q", "-p", "no:cacheprovider", *test_args])
    finally:
        sys.settrace(None)
    driver.finish()
    for episode in driver.episodes:
        episode.seconds = time.perf_counter() - start
    return driver.episodes, driver.dropped, int(exit_code)
