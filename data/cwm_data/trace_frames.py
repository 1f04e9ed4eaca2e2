"""The data model of an execution trace: frames in CWM's four event kinds, and a traced run's outcome."""

import dataclasses
from typing import NamedTuple

CALL, LINE, RETURN, EXCEPTION = "call", "line", "return", "exception"
EVENTS = (CALL, LINE, RETURN, EXCEPTION)

# How a traced run ended. Only OK and EXCEPTION traces are complete (they end with <|end_of_text|>).
OK = "ok"  # the entry point returned
EXCEPTION_EXIT = "exception"  # an exception left the entry point
STEP_LIMIT = "step_limit"  # more frames than allowed
TIMEOUT = "timeout"  # the wall-clock limit passed
MEMORY_LIMIT = "memory_limit"  # the memory limit was hit (MemoryError)
KILLED = "killed"  # the process had to be killed (hung in C code, CPU limit, signal)
ERROR = "error"  # the run could not start: bad source, unknown entry point, bad arguments
COMPLETE = (OK, EXCEPTION_EXIT)


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


class Frame(NamedTuple):
    """One step. call/line frames carry locals (name -> repr, fully resolved); return/exception a value repr.

    A NamedTuple because the tracer makes millions of them.
    """

    event: str
    line: str  # the source line with its indentation and trailing newline
    locals: dict[str, str] | None = None
    value: str | None = None

    def to_json(self) -> dict:
        return {k: v for k, v in self._asdict().items() if v is not None}

    @classmethod
    def from_json(cls, d: dict) -> "Frame":
        return cls(d["event"], d["line"], d.get("locals"), d.get("value"))


@dataclasses.dataclass
class TraceResult:
    status: str
    frames: list[Frame]
    linenos: list[int]  # source line number of each frame (not part of the CWM text)
    source: str  # the source with the entry's def line marked `# << START_OF_TRACE`
    error: str = ""  # why a run did not complete, in one line
    stdout: str = ""  # what the program printed (stdin/stdout programs)
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return self.status in COMPLETE

    def to_json(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["frames"] = [f.to_json() for f in self.frames]
        return d

    @classmethod
    def from_json(cls, d: dict) -> "TraceResult":
        return cls(**{**d, "frames": [Frame.from_json(f) for f in d["frames"]]})

    def to_wire(self) -> dict:
        """Like to_json, with each frame a [event, line, locals, value] list (a NamedTuple encodes as one):
        cheaper to write and to read back, for the trace server's answers."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_wire(cls, d: dict) -> "TraceResult":
        return cls(**{**d, "frames": [Frame(*f) for f in d["frames"]]})
