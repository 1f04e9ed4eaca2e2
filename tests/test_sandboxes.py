"""The attack battery, against every backend: each attack is contained within its limit, reported (and
scored -1 when it is a submission), and leaves no process, container or host change behind."""

import os
import subprocess
import time

import pytest
from sandbox_fixtures import BACKENDS, sandbox_of

from cwm_envs.sandbox import TIMEOUT_EXIT
from cwm_tasks.humaneval import grade_function

HOST_SECRET = "/root/cwm-host-secret.txt"
HOST_FILE = "/tmp/cwm-host-file.txt"

ATTACKS = {
    "fork bomb": "import os\nwhile True:\n    os.fork()\n",
    "memory bomb": "blocks = []\nwhile True:\n    blocks.append(bytearray(10**7))\n",
    "infinite loop": "while True:\n    pass\n",
    "100 MB of stdout": "import sys\nsys.stdout.write('x' * 100_000_000)\n",
    "network": "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=3)\n",
    "write outside": "open('/usr/cwm-evil', 'w').write('x')\n",
    "overwrite host file": f"open('{HOST_FILE}', 'w').write('changed')\nopen('/etc/passwd', 'a').write('x')\n",
    "read host files": f"print(open('{HOST_SECRET}').read())\n",
    "kill the parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(1, signal.SIGKILL)\n",
    "background process": (
        "import subprocess\nsubprocess.Popen(['sleep', '1000'], start_new_session=True)\nraise SystemExit(3)\n"
    ),
}


@pytest.fixture(scope="module", autouse=True)
def host_files():
    with open(HOST_SECRET, "w") as f:
        f.write("host secret")
    with open(HOST_FILE, "w") as f:
        f.write("original")
    yield
    for path in (HOST_SECRET, HOST_FILE):
        os.remove(path)


def _host_processes_of_uid_range() -> list[str]:
    out = subprocess.run(["ps", "-eo", "uid=,pid=,cmd="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if int(line.split()[0]) >= 65534 and "ps -eo" not in line]


def _containers() -> list[str]:
    """This process's sandbox containers (another run's, or a crashed one's, are not this test's business)."""
    from cwm_envs.sandbox_disk import owner_label

    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=cwm-sandbox={owner_label()}"], capture_output=True, text=True
    )
    return out.stdout.split()


@pytest.mark.parametrize("backend", BACKENDS)
def test_attack_battery(backend):
    sandbox = sandbox_of(backend, timeout_s=4.0)
    try:
        results = {}
        for name, program in ATTACKS.items():
            start = time.perf_counter()
            sandbox.put_file("attack.py", program)
            result = sandbox.exec(["python3", "attack.py"], timeout=4.0)
            results[name] = (result, time.perf_counter() - start)
        for name, (result, seconds) in results.items():
            assert seconds < 4.0 + 30.0, f"{name} took {seconds:.1f}s"  # ended by its deadline, not hung
            assert not result.ok, f"{name} succeeded: {result.text()[:300]}"
        assert results["infinite loop"][0].timed_out and results["infinite loop"][0].exit_code == TIMEOUT_EXIT
        big = results["100 MB of stdout"][0]
        assert big.truncated and len(big.stdout) == sandbox.limits.max_output_bytes
        assert "host secret" not in results["read host files"][0].text()
        # The sandbox still works after every attack, and nothing the attacks started is left running.
        assert sandbox.exec("echo alive").stdout == b"alive\n"
        if backend == "docker":
            top = sandbox.container.top(ps_args="-o pid,uid,cmd")["Processes"]
            assert [row[2] for row in top if int(row[1]) == sandbox.uid] == [], top
    finally:
        sandbox.close()
    with open(HOST_FILE) as f:
        assert f.read() == "original"
    assert not os.path.exists("/usr/cwm-evil")
    assert _host_processes_of_uid_range() == []
    if backend == "docker":
        assert _containers() == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_attacks_submitted_as_solutions_score_minus_one(backend):
    sandbox = sandbox_of(backend, timeout_s=4.0)
    try:
        for name, program in ATTACKS.items():
            start = time.perf_counter()
            result = grade_function(
                sandbox, "def f():\n    return 1\n" + program, "def check(c):\n    assert c() == 1\n", "f", timeout=4.0
            )
            sandbox.reset()
            # What a solution prints goes nowhere (the grade has its own channel), so a flood costs nothing and
            # the correct f still passes; every other attack breaks loading the solution.
            assert result.reward == (1 if name == "100 MB of stdout" else -1), (name, result.status)
            assert time.perf_counter() - start < 4.0 + 30.0, name  # ended by its deadline, not hung
    finally:
        sandbox.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_exec_stdin_files_and_status(backend):
    sandbox = sandbox_of(backend)
    try:
        result = sandbox.exec(
            ["python3", "-c", "import sys; d = sys.stdin.read(); print(d.upper()); sys.exit(3)"], stdin="hello"
        )
        assert (result.exit_code, result.stdout) == (3, b"HELLO\n")
        sandbox.put_file("dir/a.txt", "content")
        assert sandbox.exec("cat dir/a.txt; echo more >> dir/a.txt").ok
        assert sandbox.get_file("dir/a.txt") == b"contentmore\n"
        sandbox.exec("ln -s /etc/passwd leak")
        with pytest.raises(Exception, match="leak.: is a symbolic link"):
            sandbox.get_file("leak")
        sandbox.reset()
        assert sandbox.exec("ls").stdout == b""
    finally:
        sandbox.close()


def test_a_missing_backend_is_a_named_error(monkeypatch):
    import shutil

    from cwm_common.errors import CwmError
    from cwm_envs.sandbox_factory import make_sandbox

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(CwmError, match=r"the bwrap sandbox backend needs bubblewrap: install it"):
        make_sandbox("bwrap")
    with pytest.raises(CwmError, match="unknown sandbox backend 'podman'; backends: bwrap, docker"):
        make_sandbox("podman")
