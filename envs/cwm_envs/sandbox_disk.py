"""A sandbox's files on the host, and their cleanup when the process that made them is gone.

Each sandbox has a root directory (cwm-bwrap-* / cwm-docker-* in the temp dir) holding its owner label and
a disk: as root, a tmpfs of `disk_mb` mounted there, so /work and /tmp together cannot grow past the quota
(both backends bind its work/ and tmp/ folders). Where nothing can be mounted (not root, or root without
CAP_SYS_ADMIN) the disk is a plain folder: only the per-file size limit holds for /work, and /tmp is a
sized tmpfs of the backend's own.
"""

import contextlib
import ctypes
import errno
import glob
import os
import shutil
import tempfile
import threading

from cwm_common.errors import CwmError
from cwm_envs.sandbox_files import clear_directory

PREFIXES = ("cwm-bwrap-", "cwm-docker-")
_OWNER = "owner"
_MNT_DETACH = 2
_stale_lock = threading.Lock()
_stale_removed = False


def owner_label(pid: int | None = None) -> str | None:
    """ "pid:start-time" of a live process, None if it is gone (the start time tells a reused pid apart)."""
    pid = os.getpid() if pid is None else pid
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return f"{pid}:{fields[19]}"  # field 22 of stat: start time in clock ticks since boot


def owner_alive(label: str) -> bool:
    pid = label.split(":")[0]
    return pid.isdigit() and owner_label(int(pid)) == label


def _libc():
    return ctypes.CDLL(None, use_errno=True)


class SandboxDisk:
    def __init__(self, prefix: str, disk_mb: int, owner: int | None):
        self.root = tempfile.mkdtemp(prefix=prefix)
        try:
            with open(os.path.join(self.root, _OWNER), "w") as f:
                f.write(owner_label() or "")
            disk = os.path.join(self.root, "disk")
            os.mkdir(disk)
            self.quota = os.getuid() == 0 and _mount_tmpfs(disk, disk_mb)
            self.work_dir, self.tmp_dir = os.path.join(disk, "work"), os.path.join(disk, "tmp")
            for directory, mode in ((self.work_dir, 0o755), (self.tmp_dir, 0o1777)):
                os.mkdir(directory)
                os.chmod(directory, mode)
                if owner is not None:
                    os.chown(directory, owner, owner)
        except BaseException:
            _remove_root(self.root)
            raise

    def identity_files(self, uid: int) -> dict[str, str]:
        """/etc/passwd and /etc/group naming the sandbox's user (tools look their user up): target -> host
        file, kept outside the disk so the sandbox cannot change them."""
        files = {}
        for name, content in (
            ("passwd", f"sandbox:x:{uid}:{uid}::/work:/bin/bash\n"),
            ("group", f"sandbox:x:{uid}:\n"),
        ):
            files[f"/etc/{name}"] = path = os.path.join(self.root, name)
            with open(path, "w") as f:
                f.write(content)
        return files

    def clear(self):
        """Empties /work, and /tmp where it is the disk's (otherwise a fresh tmpfs per command or container)."""
        clear_directory(self.work_dir)
        if self.quota:
            clear_directory(self.tmp_dir)

    def remove(self):
        _remove_root(self.root)


def _mount_tmpfs(disk: str, disk_mb: int) -> bool:
    """Mounts the quota's tmpfs; False where this root may not mount (a container without CAP_SYS_ADMIN)."""
    if not _libc().mount(b"cwm-sandbox", disk.encode(), b"tmpfs", 0, f"size={disk_mb}m,mode=0755".encode()):
        return True
    error = ctypes.get_errno()
    if error == errno.EPERM:
        return False
    raise CwmError(f"could not mount the sandbox's {disk_mb} MiB disk at {disk}: {os.strerror(error)}")


def _remove_root(root: str):
    disk = os.path.join(root, "disk")
    if os.path.ismount(disk):
        _libc().umount2(disk.encode(), _MNT_DETACH)  # detached: a process still holding it cannot block us
    shutil.rmtree(root, ignore_errors=True)


def remove_stale_disks() -> int:
    """Removes the sandbox roots whose creating process is gone (a killed run's); returns how many."""
    removed = 0
    for prefix in PREFIXES:
        for root in glob.glob(os.path.join(tempfile.gettempdir(), prefix + "*")):
            label = ""
            with contextlib.suppress(OSError):
                with open(os.path.join(root, _OWNER)) as f:
                    label = f.read()
            if label and not owner_alive(label):
                _remove_root(root)
                removed += 1
    return removed


def remove_stale_disks_once():
    """The first sandbox a process makes clears what killed runs left behind."""
    global _stale_removed
    with _stale_lock:
        if _stale_removed:
            return
        _stale_removed = True
    remove_stale_disks()
