"""The Docker backend (through the `docker` Python SDK): one container per sandbox, no network, memory /
pids / CPU limits, read-only root, all capabilities dropped, no new privileges, unprivileged user, and
optionally the gVisor runtime. /work and /tmp are folders of the sandbox's disk (sandbox_disk.py: a tmpfs
of the disk quota, as root) bind-mounted read-write; the system is the host's /usr, read-only
(docker_image.py), unless the image brings its own.

Each exec runs as the sandbox's unprivileged user (a uid no other sandbox holds: sandbox_uid.py) under
`timeout -s KILL`; the container's own process (`sleep`) is root's, without capabilities. After every exec,
`kill -9 -1` as the sandbox user ends whatever the command left behind (as bubblewrap's pid namespace does),
and an exec that floods its output or outlives its deadline is killed the same way. Closing removes the
container. Containers carry a label naming their creating process (pid and start time, so a reused pid or a
machine restored from a snapshot is not mistaken for the owner); the first sandbox a process creates removes
the containers and disks of creators that are gone, so a crashed run leaves nothing behind for long.
"""

import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable

import docker.client
import docker.errors
import docker.types

from cwm_envs.docker_image import ensure_image
from cwm_envs.sandbox import (
    SHELL,
    TIMEOUT_EXIT,
    WORKDIR,
    ExecResult,
    SandboxLimits,
    SandboxView,
    as_argv,
    as_bytes,
)
from cwm_envs.sandbox_disk import SandboxDisk, owner_alive, owner_label, remove_stale_disks_once
from cwm_envs.sandbox_files import read_file, write_file
from cwm_envs.sandbox_uid import SandboxUid

LABEL = "cwm-sandbox"
# Runs the command as its own process group and ends that group when the command exits, so background
# jobs cannot hold the output stream open after the command is done.
_REAP = 'setsid "$@" <&0 & child=$!; wait $child; status=$?; kill -9 -- -$child 2>/dev/null; exit $status'
_client_lock = threading.Lock()
_client: docker.client.DockerClient | None = None
_stale_removed = False


def client() -> docker.client.DockerClient:
    """A shared client; raises docker.errors.DockerException if no daemon answers."""
    global _client
    with _client_lock:
        if _client is None:
            candidate = docker.client.from_env(timeout=60)
            candidate.ping()
            _client = candidate
    return _client


def docker_available() -> str | None:
    """None if a daemon answers, else why not (for skipping docker tests with a reason)."""
    try:
        client()
        return None
    except Exception as e:  # docker raises several unrelated types when no daemon is there
        return f"no Docker daemon reachable ({type(e).__name__}: {str(e)[:120]})"


def remove_stale() -> int:
    """Removes sandbox containers whose creating process is gone; returns how many."""
    removed = 0
    for container in client().containers.list(all=True, filters={"label": LABEL}):
        if not owner_alive(container.labels.get(LABEL, "")):
            container.remove(force=True)
            removed += 1
    return removed


def _remove_stale_once() -> None:
    global _stale_removed
    with _client_lock:
        if _stale_removed:
            return
        _stale_removed = True
    remove_stale()
    remove_stale_disks_once()


class DockerSandbox:
    backend = "docker"

    def __init__(
        self,
        limits: SandboxLimits = SandboxLimits(),
        runtime: str | None = None,
        image: str | None = None,
        own_system: bool = False,
        view: SandboxView = SandboxView(),
    ):
        self.limits = limits
        api = client()
        _remove_stale_once()
        self._uid = SandboxUid()
        self.uid = self._uid.uid
        as_root = os.getuid() == 0
        try:
            self._disk = SandboxDisk("cwm-docker-", limits.disk_mb, self.uid if as_root else None)
        except BaseException:
            self._uid.release()
            raise
        self.work_dir = self._disk.work_dir
        try:
            self.container = self._run_container(api, limits, runtime, image, own_system, view)
        except BaseException:
            self._disk.remove()
            self._uid.release()
            raise

    def _run_container(self, api, limits: SandboxLimits, runtime, image, own_system: bool, view: SandboxView):
        # The sandbox's user owns what it may write (its disk is made so); without root, anyone may write it.
        writable = [m.source for m in view.mounts if m.writable]
        if os.getuid() == 0:
            for directory in writable:
                os.chown(directory, self.uid, self.uid)
        else:
            for directory in (self.work_dir, *writable):
                os.chmod(directory, 0o777)
        volumes = {self.work_dir: {"bind": WORKDIR, "mode": "rw"}}
        if self._disk.quota:
            volumes[self._disk.tmp_dir] = {"bind": "/tmp", "mode": "rw"}
        for target, source in self._disk.identity_files(self.uid).items():
            volumes[source] = {"bind": target, "mode": "ro"}
        if not own_system:
            volumes["/usr"] = {"bind": "/usr", "mode": "ro"}
        for mount in view.mounts:
            volumes[mount.source] = {"bind": mount.target, "mode": "rw" if mount.writable else "ro"}
        memory = f"{limits.memory_mb}m"
        return api.containers.run(
            image or ensure_image(api),
            ["sleep", "infinity"],
            detach=True,
            init=True,
            network_mode="none",
            mem_limit=memory,
            memswap_limit=memory,
            pids_limit=limits.pids,
            nano_cpus=int(limits.cpus * 1e9),
            read_only=True,
            tmpfs=None if self._disk.quota else {"/tmp": f"size={limits.disk_mb}m"},
            user="0:0",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            volumes=volumes,
            working_dir=WORKDIR,
            runtime=runtime,
            labels={LABEL: owner_label()},
            environment={"HOME": WORKDIR, "LANG": "C.UTF-8", **dict(view.environment)},
            ulimits=[docker.types.Ulimit(name="fsize", soft=limits.file_size_mb << 20, hard=limits.file_size_mb << 20)],
        )

    def exec(self, command, *, stdin=None, timeout=None) -> ExecResult:
        timeout = timeout or self.limits.timeout_s
        api = client().api
        argv = [
            "timeout",
            "-s",
            "KILL",
            str(max(1, int(timeout + 0.999))),
            "bash",
            "-c",
            _REAP,
            "reap",
            *as_argv(command),
        ]
        start = time.perf_counter()
        exec_id = api.exec_create(self.container.id, argv, stdin=True, workdir=WORKDIR, user=f"{self.uid}:{self.uid}")[
            "Id"
        ]
        sock = api.exec_start(exec_id, socket=True)
        raw = sock._sock
        stdout, stderr, truncated, timed_out = self._pump(
            raw, as_bytes(stdin), start + timeout + 1.0, lambda: api.exec_inspect(exec_id)["Running"]
        )
        raw.close()
        self._end_leftovers()
        info = api.exec_inspect(exec_id)
        code = info.get("ExitCode")
        timed_out = timed_out or code in (TIMEOUT_EXIT, 137) and time.perf_counter() - start >= timeout
        if code is None or timed_out:
            code = TIMEOUT_EXIT if timed_out else -9
        return ExecResult(code, stdout, stderr, time.perf_counter() - start, timed_out, truncated)

    def open_shell(self) -> "DockerShell":
        return self.start_process(SHELL)

    def start_process(self, argv: list[str], init: bool = False) -> "DockerShell":
        """A process in the container, attached through Docker's exec socket. It is never the container's
        init (`init` is accepted for the protocol): a process of the sandbox user can still kill it."""
        api = client().api
        exec_id = api.exec_create(
            self.container.id,
            argv,
            stdin=True,
            workdir=WORKDIR,
            user=f"{self.uid}:{self.uid}",
        )["Id"]
        sock = api.exec_start(exec_id, socket=True)
        return DockerShell(sock._sock, lambda: api.exec_inspect(exec_id)["Running"], lambda: self._end_exec(exec_id))

    def _end_exec(self, exec_id: str):
        """Kills one exec's process: from the host by pid as root, else every process of the sandbox user."""
        pid = client().api.exec_inspect(exec_id).get("Pid")
        if os.getuid() == 0 and pid:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
            return
        self._end_leftovers()

    def _pump(self, raw: socket.socket, stdin: bytes, deadline: float, running):
        """Sends stdin, then reads Docker's multiplexed frames until EOF, the deadline or the output cap;
        stops early once the command has exited (background children may hold the stream open)."""
        cap = self.limits.max_output_bytes
        out = {1: bytearray(), 2: bytearray()}
        threading.Thread(target=_send_and_close, args=(raw, stdin), daemon=True).start()
        buffer = b""
        truncated = timed_out = stopping = False
        drain_until = None  # once the command has exited: a short grace for output still in flight
        while True:
            now = time.perf_counter()
            if drain_until is not None and now >= drain_until:
                break
            remaining = deadline - now
            if remaining <= 0:
                timed_out = True
                break
            raw.settimeout(min(remaining, 0.1))
            try:
                chunk = raw.recv(65536)
            except TimeoutError:
                if drain_until is None and not running():
                    drain_until = time.perf_counter() + 1.0
                continue
            except OSError:
                break
            if not chunk:
                break
            buffer += chunk
            while len(buffer) >= 8:
                stream, size = buffer[0], struct.unpack(">I", buffer[4:8])[0]
                if len(buffer) < 8 + size:
                    break
                data, buffer = buffer[8 : 8 + size], buffer[8 + size :]
                target = out.get(stream, out[1])
                room = cap - len(target)
                target += data[: max(0, room)]
                truncated = truncated or len(data) > room
            if truncated and not stopping:
                # Stop the writer, then keep draining so the daemon sees the exec end cleanly.
                stopping = True
                self._end_leftovers()
        return bytes(out[1]), bytes(out[2]), truncated, timed_out

    def _end_leftovers(self):
        """Kills every process of the sandbox user (background jobs, fork bombs, a flooding writer).

        As root, from the host by pid (this works even when the container has no pids left to fork a
        `kill`); otherwise with `kill -9 -1` run inside as the sandbox user."""
        api = client().api
        if os.getuid() == 0:
            listing = api.top(self.container.id, ps_args="-o pid,uid")
            for pid, uid in (row[:2] for row in listing.get("Processes") or []):
                if int(uid) == self.uid:
                    try:
                        os.kill(int(pid), 9)
                    except ProcessLookupError:
                        pass
            return
        exec_id = api.exec_create(self.container.id, ["kill", "-9", "-1"], user=f"{self.uid}:{self.uid}")["Id"]
        api.exec_start(exec_id)

    def put_file(self, path: str, data) -> None:
        write_file(self.work_dir, path, as_bytes(data), self.uid if os.getuid() == 0 else None)

    def get_file(self, path: str) -> bytes:
        return read_file(self.work_dir, path)

    def reset(self) -> None:
        """Ends leftover processes and empties /work (and /tmp, where it is the disk's) for the next task."""
        self._end_leftovers()
        self._disk.clear()

    def alive(self) -> bool:
        try:
            self.container.reload()
            return self.container.status == "running"
        except docker.errors.NotFound:
            return False

    def close(self) -> None:
        try:
            self.container.remove(force=True)
        except docker.errors.NotFound:
            pass
        self._disk.remove()
        self._uid.release()


def _send_and_close(raw: socket.socket, data: bytes):
    try:
        if data:
            raw.sendall(data)
        raw.shutdown(socket.SHUT_WR)  # end of stdin for the command
    except OSError:
        pass


class DockerShell:
    """A shell reached through an attached exec socket: Docker frames each write (8-byte header: stream,
    size), so stdout and stderr come back in the order they were written. The socket stays open after the
    shell exits (its stdin is still attached), so a quiet socket is checked against the exec's state."""

    def __init__(self, raw: socket.socket, running: Callable[[], bool], end: Callable[[], None]):
        self.raw, self._running, self._end = raw, running, end
        self._buffer = b""

    def write(self, data: bytes) -> None:
        self.raw.sendall(data)

    def read(self, timeout: float) -> bytes | None:
        self.raw.settimeout(timeout)
        try:
            chunk = self.raw.recv(65536)
        except TimeoutError:
            return b"" if self._running() else None
        if not chunk:
            return None
        self._buffer += chunk
        out = bytearray()
        while len(self._buffer) >= 8:
            size = struct.unpack(">I", self._buffer[4:8])[0]
            if len(self._buffer) < 8 + size:
                break
            out += self._buffer[8 : 8 + size]
            self._buffer = self._buffer[8 + size :]
        return bytes(out)

    def kill(self) -> None:
        self._end()
        self.raw.close()
