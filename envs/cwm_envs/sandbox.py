"""One sandbox interface, several backends: start, exec (stdin, timeout, bounded output), files, close.

A sandbox is a work directory (`/work` inside) plus a way to run commands there with no network, limited
memory / processes / CPU, a read-only system, and no access to the host's other files beyond the mounts
its SandboxView names (e.g. the host's Python, read-only: host_python.py). Backends:
`bwrap_sandbox.BwrapSandbox` (bubblewrap, ~20 ms a command, the embedded default) and
`docker_sandbox.DockerSandbox` (a container per sandbox; optionally gVisor); `sandbox_factory` makes one by name.
"""

import dataclasses
from typing import Protocol

from cwm_common.errors import CwmError
from cwm_envs.shell_session import ShellProcess

WORKDIR = "/work"
BACKENDS = ("bwrap", "docker")  # sandbox_factory.make_sandbox makes them
TIMEOUT_EXIT = 124  # exit status reported when a command ran out of time (as coreutils `timeout`)


@dataclasses.dataclass(frozen=True)
class SandboxLimits:
    memory_mb: int = 1024
    pids: int = 64
    cpus: float = 1.0
    timeout_s: float = 30.0  # per exec, unless the call gives its own
    max_output_bytes: int = 1 << 20  # per stream; more is cut and the command stopped
    file_size_mb: int = 256
    disk_mb: int = 512  # all of /work and /tmp together (a tmpfs of this size on both backends)

    def __post_init__(self):
        # A zero or negative value would turn a limit off (prlimit) or break the sandbox (memory 0).
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not value > 0:
                raise CwmError(f"sandbox limit {field.name} must be positive (got {value})")


@dataclasses.dataclass(frozen=True)
class Mount:
    """A host directory shown inside the sandbox at `target` (read-only unless `writable`)."""

    source: str
    target: str
    writable: bool = False


@dataclasses.dataclass(frozen=True)
class SandboxView:
    """What a sandbox shows beyond the system and /work: extra mounts, and variables every process gets."""

    mounts: tuple[Mount, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()  # (name, value) pairs

    def plus(self, other: "SandboxView") -> "SandboxView":
        return SandboxView(self.mounts + other.mounts, self.environment + other.environment)


@dataclasses.dataclass
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes
    seconds: float
    timed_out: bool = False
    truncated: bool = False  # output beyond max_output_bytes was dropped (and the command stopped)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def text(self) -> str:
        return (self.stdout + self.stderr).decode(errors="replace")


class Sandbox(Protocol):
    limits: SandboxLimits

    def exec(
        self, command: list[str] | str, *, stdin: bytes | str | None = None, timeout: float | None = None
    ) -> ExecResult:
        """Runs argv (or a shell string through bash -c) in /work."""

    def put_file(self, path: str, data: bytes | str) -> None:
        """Writes a file (path relative to /work, or absolute under /work)."""

    def get_file(self, path: str) -> bytes: ...

    def start_process(self, argv: list[str], init: bool = False) -> ShellProcess:
        """A long-lived process in /work, fed through its stdin, its stdout and stderr read as one stream.
        No per-command CPU or time limit applies: its owner ends it (kill, or closing its stdin).
        init: where the backend can, the process is the sandbox's init, which nothing inside can signal
        and whose end ends every other process (bwrap: pid 1 of its namespace; not Docker)."""
        ...

    def open_shell(self) -> ShellProcess:
        """A bash process in the sandbox for a persistent session (shell_session.ShellSession)."""
        ...

    def reset(self) -> None:
        """Readies the sandbox for the next task: leftover processes ended, /work emptied."""

    def alive(self) -> bool: ...

    def close(self) -> None:
        """Ends every process of the sandbox and removes it."""


SHELL = ["bash", "--noprofile", "--norc"]


def as_argv(command: list[str] | str) -> list[str]:
    return ["bash", "-c", command] if isinstance(command, str) else list(command)


def as_bytes(data: bytes | str | None) -> bytes:
    if data is None:
        return b""
    return data.encode() if isinstance(data, str) else data
