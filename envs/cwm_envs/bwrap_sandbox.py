"""The bubblewrap backend: each command runs in fresh namespaces (no network, own PIDs) over a read-only
view of the host's /usr, with the sandbox's disk (sandbox_disk.py) at /work and /tmp, under its own user id,
rlimits and a seccomp filter that refuses new namespaces and mounts (seccomp_filter.py).

As root, every sandbox gets an unprivileged uid no other sandbox on the machine holds (sandbox_uid.py), so
RLIMIT_NPROC, which root ignores, bounds its processes without sharing the budget; the pid namespace ends
every process a command leaves behind when the command exits.
"""

import os
import shutil
import subprocess

from cwm_common.errors import CwmError
from cwm_envs import seccomp_filter
from cwm_envs.bounded_process import run_bounded
from cwm_envs.sandbox import SHELL, WORKDIR, ExecResult, SandboxLimits, SandboxView, as_argv, as_bytes
from cwm_envs.sandbox_disk import SandboxDisk, remove_stale_disks_once
from cwm_envs.sandbox_files import read_file, write_file
from cwm_envs.sandbox_uid import SandboxUid
from cwm_envs.shell_session import PipeShell


def _system_view() -> list[str]:
    """Binds that make the host's merged /usr usable inside (binaries, libraries, the loader cache)."""
    args = ["--ro-bind", "/usr", "/usr", "--perms", "0755", "--dir", "/etc"]
    for link in ("bin", "lib", "lib64", "sbin"):
        if os.path.islink(f"/{link}"):
            args += ["--symlink", os.readlink(f"/{link}"), f"/{link}"]
        elif os.path.isdir(f"/{link}"):
            args += ["--ro-bind", f"/{link}", f"/{link}"]
    for path in ("/etc/alternatives", "/etc/ld.so.cache", "/etc/ssl/certs"):
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    return args


_SYSTEM_ROOTS = {"usr", "bin", "lib", "lib64", "sbin", "etc", "proc", "dev", "tmp", WORKDIR.strip("/")}


def _ancestors(path: str) -> list[str]:
    """/a/b/c -> [/a, /a/b, /a/b/c]."""
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts)) if parts[0]]


class BwrapSandbox:
    backend = "bwrap"

    def __init__(self, limits: SandboxLimits = SandboxLimits(), view: SandboxView = SandboxView()):
        if shutil.which("bwrap") is None:
            raise CwmError(
                "the bwrap sandbox backend needs bubblewrap: install it (apt-get install bubblewrap) "
                "or choose the docker backend"
            )
        self.limits, self.view = limits, view
        self._shells: list[PipeShell] = []  # persistent sessions, ended with the sandbox's other processes
        remove_stale_disks_once()
        self._as_root = os.getuid() == 0
        self._uid = SandboxUid() if self._as_root else None
        self.uid = self._uid.uid if self._uid else os.getuid()
        try:
            self._disk = SandboxDisk("cwm-bwrap-", limits.disk_mb, self.uid if self._as_root else None)
        except BaseException:
            if self._uid:
                self._uid.release()
            raise
        self.work_dir = self._disk.work_dir
        if self._as_root:  # the sandbox's user owns what it may write
            for mount in view.mounts:
                if mount.writable:
                    os.chown(mount.source, self.uid, self.uid)
        self._identity = self._disk.identity_files(self.uid)

    def _argv(
        self,
        argv: list[str],
        seccomp_fd: int,
        die_with_parent: bool = True,
        cpu_limit: bool = True,
        as_init: bool = False,
    ) -> list[str]:
        lim = self.limits
        outer = [
            "bwrap",
            "--seccomp",
            str(seccomp_fd),
            *(["--die-with-parent"] if die_with_parent else []),
            *(["--as-pid-1"] if as_init else []),
            "--new-session",
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-uts",
            "--unshare-cgroup-try",
            *_system_view(),
            *[arg for target, source in self._identity.items() for arg in ("--ro-bind", source, target)],
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            *(["--bind", self._disk.tmp_dir] if self._disk.quota else ["--size", str(lim.disk_mb << 20), "--tmpfs"]),
            "/tmp",
            "--bind",
            self.work_dir,
            WORKDIR,
            *self._mounts(),
            "--chdir",
            WORKDIR,
            "--clearenv",
            "--setenv",
            "PATH",
            "/usr/local/bin:/usr/bin:/bin",
            "--setenv",
            "HOME",
            WORKDIR,
            "--setenv",
            "LANG",
            "C.UTF-8",
        ]
        for name, value in self.view.environment:
            outer += ["--setenv", name, value]
        if self._as_root:
            become = ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups", "--"]
        else:
            outer += ["--unshare-user", "--uid", str(self.uid), "--gid", str(os.getgid())]
            become = []
        limits = [
            "prlimit",
            f"--as={lim.memory_mb << 20}",
            f"--nproc={lim.pids}",
            *([f"--cpu={int(lim.timeout_s) + 1}"] if cpu_limit else []),
            f"--fsize={lim.file_size_mb << 20}",
            "--",
        ]
        return outer + ["--"] + become + limits + argv

    def _mounts(self) -> list[str]:
        # Directories bwrap would make for a mount point are root's 0700: make them readable first.
        parents = {os.path.dirname(m.target) for m in self.view.mounts}
        parents = {a for p in parents for a in _ancestors(p) if a.split("/")[1] not in _SYSTEM_ROOTS}
        args = [arg for d in sorted(parents) for arg in ("--perms", "0755", "--dir", d)]
        for mount in self.view.mounts:
            args += ["--bind" if mount.writable else "--ro-bind", mount.source, mount.target]
        return args

    def exec(self, command, *, stdin=None, timeout=None) -> ExecResult:
        seccomp = seccomp_filter.program_fd()
        try:
            return run_bounded(
                self._argv(as_argv(command), seccomp),
                as_bytes(stdin),
                timeout or self.limits.timeout_s,
                self.limits.max_output_bytes,
                pass_fds=(seccomp,),
            )
        finally:
            os.close(seccomp)

    def open_shell(self) -> PipeShell:
        return self.start_process(SHELL)

    def start_process(self, argv: list[str], init: bool = False) -> PipeShell:
        """A process in this sandbox (own namespaces, same /work), fed through pipes, output combined.

        Not --die-with-parent: that follows the thread that started it, and an episode's turns (or a trace
        pool's jobs) run on different threads. A shell ends when its stdin closes (with this process at the
        latest), and its pid namespace with it. init=True makes the process the namespace's pid 1: nothing
        inside can signal it, and when it ends the kernel ends every other process of the namespace."""
        seccomp = seccomp_filter.program_fd()
        try:
            process = subprocess.Popen(
                self._argv(argv, seccomp, die_with_parent=False, cpu_limit=False, as_init=init),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=(seccomp,),
            )
        finally:
            os.close(seccomp)
        shell = PipeShell(process)
        self._shells.append(shell)
        return shell

    def put_file(self, path: str, data) -> None:
        write_file(self.work_dir, path, as_bytes(data), self.uid if self._as_root else None)

    def get_file(self, path: str) -> bytes:
        return read_file(self.work_dir, path)

    def reset(self) -> None:
        """Ends open shells and empties /work and /tmp for the next task (no other process outlives its
        command)."""
        self._end_shells()
        self._disk.clear()

    def _end_shells(self):
        for shell in self._shells:
            shell.kill()
        self._shells.clear()

    def alive(self) -> bool:
        return os.path.isdir(self.work_dir)

    def close(self) -> None:
        self._end_shells()
        self._disk.remove()
        if self._uid:
            self._uid.release()
