"""Host-side access to a sandbox's work directory that never follows a path out of it."""

import os
import shutil

from cwm_common.errors import CwmError


def host_path(work_dir: str, path: str) -> str:
    """The host path of `path` (relative to /work, or absolute under /work), refusing anything outside."""
    relative = os.path.relpath(path, "/work") if os.path.isabs(path) else path
    full = os.path.realpath(os.path.join(work_dir, relative))  # symlinks made inside resolve here
    root = os.path.realpath(work_dir)
    if full != root and not full.startswith(root + os.sep):
        raise CwmError(f"sandbox path '{path}' leads outside the work directory")
    return full


def write_file(work_dir: str, path: str, data: bytes, owner: int | None):
    """Writes a file; directories it creates and the file belong to `owner` (the sandbox's user)."""
    full = host_path(work_dir, path)
    missing, parent = [], os.path.dirname(full)
    while not os.path.isdir(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    for directory in reversed(missing):
        os.mkdir(directory)
        if owner is not None:
            os.chown(directory, owner, owner)
    with open(full, "wb") as f:
        f.write(data)
    if owner is not None:
        os.chown(full, owner, owner)


def read_file(work_dir: str, path: str) -> bytes:
    full = host_path(work_dir, path)
    try:
        with open(full, "rb") as f:
            return f.read()
    except OSError as e:
        raise CwmError(f"sandbox file '{path}': {e.strerror}") from None


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
