"""The host's own Python build, shown read-only inside sandboxes (the tracer's server, repository
environments): the interpreter that runs the in-process tracer, so traced code behaves exactly as it would
here. Nothing else of the host comes with it: not this project's virtual environment, not site-packages."""

import dataclasses
import os
import sys

from cwm_common.errors import CwmError
from cwm_envs.sandbox import Mount, SandboxView

PYTHON_MOUNT = "/opt/cwm/python"


@dataclasses.dataclass(frozen=True)
class SandboxPython:
    executable: str  # its path inside the sandbox
    view: SandboxView  # what the sandbox must show for it to run


def sandbox_python() -> SandboxPython:
    prefix = os.path.realpath(sys.base_prefix)
    executable = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    if prefix == "/usr" or prefix.startswith("/usr/"):
        return SandboxPython(executable, SandboxView())  # every sandbox shows the host's /usr
    if not executable.startswith(prefix + os.sep):
        raise CwmError(f"the Python executable {executable} is not inside its installation {prefix}")
    # Builds outside /usr (pyenv, conda) link libpython by absolute path: point the loader at the mount.
    return SandboxPython(
        PYTHON_MOUNT + executable[len(prefix) :],
        SandboxView((Mount(prefix, PYTHON_MOUNT),), (("LD_LIBRARY_PATH", f"{PYTHON_MOUNT}/lib"),)),
    )
