"""Which sandbox backends this machine can run, for parametrized tests (missing ones skip with the reason)."""

import shutil

import pytest

from cwm_envs.sandbox import SandboxLimits
from cwm_envs.sandbox_factory import make_sandbox


def _docker_reason():
    from cwm_envs.docker_sandbox import docker_available

    return docker_available()


BACKENDS = [
    pytest.param(
        "bwrap", marks=pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
    ),
    pytest.param(
        "docker",
        marks=[pytest.mark.docker, pytest.mark.skipif(_docker_reason() is not None, reason=str(_docker_reason()))],
    ),
]


def sandbox_of(backend: str, **limits):
    return make_sandbox(backend, SandboxLimits(**{"timeout_s": 5.0, "memory_mb": 256, **limits}))
