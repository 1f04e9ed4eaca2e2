"""The sandbox pool: concurrent borrowing, replacement of dead sandboxes, and cleanup on exit, Ctrl-C or a crash."""

import signal
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sandbox_fixtures import BACKENDS, sandbox_of

from cwm_envs.docker_sandbox import docker_available
from cwm_envs.pool import SandboxPool
from cwm_envs.sandbox_factory import make_sandbox

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_pool_serves_threads_and_replaces_dead_sandboxes(backend):
    with SandboxPool(lambda: sandbox_of(backend), 2) as pool:

        def job(i):
            with pool.sandbox(timeout=60) as sandbox:
                sandbox.put_file("n.txt", str(i))
                return sandbox.exec("cat n.txt; echo; ls | wc -l").stdout.decode().split()

        results = list(ThreadPoolExecutor(4).map(job, range(8)))
        assert results == [[str(i), "1"] for i in range(8)]  # each borrower found /work empty
        with pool.sandbox() as sandbox:
            sandbox.close()  # it dies while borrowed
        with pool.sandbox() as sandbox:
            assert sandbox.exec("echo ok").stdout == b"ok\n"
        assert pool.replaced == 1


CLEANUP_SCRIPT = textwrap.dedent("""
    import sys
    from cwm_envs.pool import SandboxPool
    from cwm_envs.sandbox_factory import make_sandbox
    pool = SandboxPool(lambda: make_sandbox(sys.argv[1]), 2)
    with pool.sandbox() as sandbox:
        sandbox.exec("sleep 0.1")
        print("ready", flush=True)
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-task
""")


@pytest.mark.parametrize("backend", BACKENDS)
def test_ctrl_c_leaves_no_container_or_process(backend, tmp_path):
    before = _leftovers(backend)
    run = subprocess.run(
        [sys.executable, "-c", CLEANUP_SCRIPT, backend], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert "ready" in run.stdout and "KeyboardInterrupt" in run.stderr
    assert _leftovers(backend) == before


def _leftovers(backend: str) -> list[str]:
    if backend == "docker":
        return subprocess.run(
            ["docker", "ps", "-aq", "--filter", "label=cwm-sandbox"], capture_output=True, text=True
        ).stdout.split()
    return sorted(p.name for p in Path("/tmp").glob("cwm-bwrap-*"))


KILLED_SCRIPT = textwrap.dedent("""
    import os, signal
    from cwm_envs.sandbox_factory import make_sandbox
    sandbox = make_sandbox("docker")
    print(sandbox.container.id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # a crash: no close, no atexit
""")


@pytest.mark.docker
@pytest.mark.skipif(docker_available() is not None, reason=str(docker_available()))
def test_a_killed_runs_containers_are_removed_by_the_next_sandbox():
    import cwm_envs.docker_sandbox as docker_sandbox

    run = subprocess.run([sys.executable, "-c", KILLED_SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120)
    orphan = run.stdout.split()[0]
    assert run.returncode == -signal.SIGKILL and orphan[:12] in _leftovers("docker")
    docker_sandbox._stale_removed = False  # as in a fresh process
    make_sandbox("docker").close()
    assert orphan[:12] not in _leftovers("docker")
