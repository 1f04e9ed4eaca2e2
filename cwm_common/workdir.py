"""Run directories are local (or mounted) paths: metrics, manifests and exchange files are written with
plain file I/O, so a URL would silently become a relative directory named `gs:`. An existing file in the way
is named before a run writes anything."""

import os

from cwm_common.errors import CwmError


def check_workdir(path: str) -> str:
    if "://" in str(path):
        raise CwmError(
            f"workdir {path}: URLs are not supported; mount the bucket (e.g. gcsfuse) and pass the mounted path"
        )
    return check_output_dir(str(path), "workdir")


def check_output_dir(path: str, what: str = "output directory") -> str:
    """A directory to write into: absent (it is made) or a directory, never an existing file."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise CwmError(f"{what} {path}: exists and is not a directory")
    return path
