"""Sandboxes by backend name (what `--backend` and `rl.sandbox_backend` say)."""

from cwm_common.errors import CwmError
from cwm_envs.bwrap_sandbox import BwrapSandbox
from cwm_envs.docker_sandbox import DockerSandbox
from cwm_envs.sandbox import BACKENDS, Sandbox, SandboxLimits


def make_sandbox(backend: str, limits: SandboxLimits = SandboxLimits(), **options) -> Sandbox:
    """A sandbox of the named backend (options go to the backend: `view` for both, e.g.
    runtime="runsc" for Docker)."""
    if backend == "bwrap":
        return BwrapSandbox(limits, **options)
    if backend == "docker":
        return DockerSandbox(limits, **options)
    raise CwmError(f"unknown sandbox backend '{backend}'; backends: {', '.join(BACKENDS)}")
