"""Host-side access to a sandbox's work directory: never through a symlink, never on anything but a regular
file (a FIFO made inside would block the host forever), never out of the work directory.

Paths are opened one component at a time relative to the work directory with O_NOFOLLOW, so a link the
sandbox swaps in between a check and the open cannot lead the host elsewhere.
"""

import contextlib
import errno
import os
import shutil
import stat

from cwm_common.errors import CwmError

_NOT_REGULAR = "sandbox file '{path}' is not a regular file; only regular files are read or written"


def _components(path: str) -> list[str]:
    relative = os.path.relpath(path, "/work") if os.path.isabs(path) else path
    parts = [p for p in os.path.normpath(relative).split("/") if p not in ("", ".")]
    if not parts or parts[0] == "..":
        raise CwmError(f"sandbox path '{path}' leads outside the work directory")
    return parts


def _open_parent(work_dir: str, path: str, owner: int | None, create: bool) -> tuple[int, str]:
    """An fd of the directory holding `path` (made, owned by `owner`, if `create`), and the file's name."""
    *directories, name = _components(path)
    fd = os.open(work_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for directory in directories:
            made = False
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(directory, dir_fd=fd)
                    made = True
            child = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = child
            if made and owner is not None:
                os.fchown(fd, owner, owner)  # through the descriptor: a link swapped in meanwhile is not followed
    except OSError as e:
        os.close(fd)
        raise CwmError(f"sandbox path '{path}': a parent is not a plain directory ({e.strerror})") from None
    return fd, name


def _open_regular(parent: int, name: str, path: str, flags: int) -> int:
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644, dir_fd=parent)
    except OSError as e:
        if e.errno == errno.ENXIO:  # a FIFO no one reads, opened for writing without blocking
            raise CwmError(_NOT_REGULAR.format(path=path)) from None
        why = "is a symbolic link (links are not followed)" if e.errno == errno.ELOOP else e.strerror
        raise CwmError(f"sandbox file '{path}': {why}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CwmError(_NOT_REGULAR.format(path=path))
    return fd


def write_file(work_dir: str, path: str, data: bytes, owner: int | None):
    """Writes a file; directories it creates and the file belong to `owner` (the sandbox's user)."""
    parent, name = _open_parent(work_dir, path, owner, create=True)
    try:
        fd = _open_regular(parent, name, path, os.O_WRONLY | os.O_CREAT)
    finally:
        os.close(parent)
    try:
        os.ftruncate(fd, 0)
        view = memoryview(data)
        while view:  # unbuffered: a full disk is reported here, not at a close nobody checks
            view = view[os.write(fd, view) :]
        if owner is not None:
            os.fchown(fd, owner, owner)
    except OSError as e:
        raise CwmError(f"sandbox file '{path}': {e.strerror}") from None
    finally:
        os.close(fd)


def read_file(work_dir: str, path: str) -> bytes:
    parent, name = _open_parent(work_dir, path, None, create=False)
    try:
        fd = _open_regular(parent, name, path, os.O_RDONLY)
    finally:
        os.close(parent)
    with os.fdopen(fd, "rb") as f:
        return f.read()


def clear_directory(directory: str):
    for entry in os.listdir(directory):
        path = os.path.join(directory, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)


def regular_files(source_dir: str) -> list[str]:
    """Paths (relative) of the regular files under source_dir; symlinks are skipped, never followed, so a
    link in a repository cannot copy a host file into a sandbox."""
    found = []
    for root, dirs, files in os.walk(source_dir):
        dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(root, d)))
        for name in sorted(files):
            path = os.path.join(root, name)
            if os.path.isfile(path) and not os.path.islink(path):
                found.append(os.path.relpath(path, source_dir))
    return found
