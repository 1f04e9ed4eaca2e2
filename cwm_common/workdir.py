"""Run directories are local (or mounted) paths: metrics, manifests and exchange files are written with
plain file I/O, so a URL would silently become a relative directory named `gs:`."""

from cwm_common.errors import CwmError


def check_workdir(path: str) -> str:
    if "://" in str(path):
        raise CwmError(
            f"workdir {path}: URLs are not supported; mount the bucket (e.g. gcsfuse) and pass the mounted path"
        )
    return str(path)
