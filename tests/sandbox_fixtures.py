"""The sandbox backends, for parametrized tests (conftest skips a backend this machine lacks, with the reason)."""

import pytest

from cwm_envs.sandbox import SandboxLimits
from cwm_envs.sandbox_factory import make_sandbox

BACKENDS = [
    pytest.param("bwrap", marks=pytest.mark.bwrap),
    pytest.param("docker", marks=pytest.mark.docker),
]


def sandbox_of(backend: str, **limits):
    return make_sandbox(backend, SandboxLimits(**{"timeout_s": 5.0, "memory_mb": 256, **limits}))
