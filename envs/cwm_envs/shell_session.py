"""A persistent bash session inside a sandbox, as CWM's agent environment keeps one (the release's
cwm/rl/swerl/remote/session.py): `cd`, `export`, shell variables and background jobs carry over from one
command to the next.

Protocol: each command is written to the shell's stdin followed by `__EXIT_CODE__=$?` and an echo of a sentinel
(written so that the command line itself does not contain it); the output is everything the shell prints,
stdout and stderr interleaved, up to the last sentinel, decoded as UTF-8 with undecodable bytes dropped.
A command that runs past its deadline, prints more than the cap, or ends the shell ends the session; the next
command starts a fresh one (the start script runs again: the working directory and variables are reset).
"""

import dataclasses
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Protocol

SENTINEL = b"<<exit>1"
MAX_OUTPUT_BYTES = 480 << 10  # the release's cap on one command's output
TIMEOUT, TOO_LONG, ENDED = "timeout", "too_long", "ended"


class ShellProcess(Protocol):
    """A process in a sandbox (a bash shell, a trace server): bytes in, combined output out."""

    def write(self, data: bytes) -> None: ...

    def read(self, timeout: float) -> bytes | None:
        """Output available within `timeout` seconds (b"" if none yet), or None once the process has ended."""
        ...

    def kill(self) -> None: ...


@dataclasses.dataclass
class SessionOutput:
    text: str  # empty when the command failed
    error: str | None = None  # TIMEOUT, TOO_LONG or ENDED: the session was ended


class ShellSession:
    def __init__(
        self,
        open_shell: Callable[[], ShellProcess],
        start_script: str,
        timeout_s: float = 120.0,
        max_output_bytes: int = MAX_OUTPUT_BYTES,
    ):
        self._open, self.start_script = open_shell, start_script
        self.timeout_s, self.max_output_bytes = timeout_s, max_output_bytes
        self._shell: ShellProcess | None = None

    def run(self, command: str) -> SessionOutput:
        if self._shell is None:
            self._shell = self._open()
            # Every output goes to one stream, in the order it is written; the start script's own is dropped.
            self._exchange(f"exec 2>&1\n{self.start_script}")
            if self._shell is None:
                return SessionOutput("", ENDED)
        return self._exchange(command)

    def exit_code(self) -> int:
        """The exit status of the last command (-1 when it cannot be read)."""
        probe = self.run("echo $__EXIT_CODE__")
        try:
            return int(probe.text.strip()) if probe.error is None else -1
        except ValueError:
            return -1

    def _exchange(self, command: str) -> SessionOutput:
        shell = self._shell
        assert shell is not None
        framed = f'{command.rstrip()}\n__EXIT_CODE__=$?\necho "<<exit>$((1))"\n'
        buffer = bytearray()
        deadline = time.monotonic() + self.timeout_s
        try:
            shell.write(framed.encode())
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return self._end(TIMEOUT)
                chunk = shell.read(min(left, 1.0))
                if chunk is None:
                    return self._end(ENDED)
                buffer += chunk
                if len(buffer) > self.max_output_bytes:
                    return self._end(TOO_LONG)
                end = buffer.rfind(SENTINEL)
                if end >= 0:
                    return SessionOutput(bytes(buffer[:end]).decode("utf-8", errors="ignore"))
        except OSError:  # the shell's pipe or socket broke
            return self._end(ENDED)

    def _end(self, error: str) -> SessionOutput:
        self.close()
        return SessionOutput("", error)

    def close(self):
        if self._shell is not None:
            self._shell.kill()
            self._shell = None


class PipeShell:
    """A process started locally (the bwrap backend's shells and servers), reached through its pipes."""

    def __init__(self, process: subprocess.Popen):
        self.process = process
        assert process.stdin is not None and process.stdout is not None
        self._stdin, self._stdout = process.stdin, process.stdout

    def write(self, data: bytes) -> None:
        self._stdin.write(data)
        self._stdin.flush()

    def read(self, timeout: float) -> bytes | None:
        ready, _, _ = select.select([self._stdout], [], [], timeout)
        if not ready:
            return b""
        chunk = os.read(self._stdout.fileno(), 65536)
        return chunk or None

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # the shell and everything it started
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        for pipe in (self._stdin, self._stdout):
            try:
                pipe.close()
            except OSError:  # a write that never reached the dead shell is still buffered
                pass
