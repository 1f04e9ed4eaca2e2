"""Limits that hold on both backends: the disk quota, a uid (and process budget) per sandbox across processes,
no nested namespaces or mounts, host file I/O only on regular files, validated limits, and the cleanup of
what killed runs leave behind."""

import os
import platform
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from sandbox_fixtures import BACKENDS, sandbox_of

from cwm_common.errors import CwmError
from cwm_envs.sandbox import SandboxLimits
from cwm_envs.sandbox_disk import remove_stale_disks

each_backend = pytest.mark.parametrize("backend", BACKENDS)


@each_backend
def test_a_disk_bomb_stops_at_the_quota(backend):
    sandbox = sandbox_of(backend, disk_mb=48)
    try:
        # Many files, each under the per-file limit: only a quota on the whole disk stops them.
        result = sandbox.exec(
            "for i in $(seq 40); do head -c 4000000 /dev/zero > /work/f$i || break; done;"
            "for i in $(seq 40); do head -c 4000000 /dev/zero > /tmp/f$i || break; done; du -sm /work /tmp",
            timeout=30,
        )
        assert b"No space left on device" in result.stderr
        used = sum(int(line.split()[0]) for line in result.stdout.decode().splitlines())
        assert 40 <= used <= 48, result.text()
        with pytest.raises(CwmError, match="sandbox file 'big': No space left on device"):
            sandbox.put_file("big", b"x" * (1 << 20))  # the host writes into the same quota
    finally:
        sandbox.close()


_FORKS = textwrap.dedent(
    """
    import os, sys, time
    from cwm_envs.sandbox import SandboxLimits
    from cwm_envs.sandbox_factory import make_sandbox
    sandbox = make_sandbox(sys.argv[1], SandboxLimits(pids=16, timeout_s=30))
    print(sandbox.uid, flush=True)
    sys.stdin.readline()  # both processes hold their sandbox before either forks
    program = (
        "import os, time\\nok = 0\\nfor _ in range(10):\\n    try:\\n        if os.fork() == 0:\\n"
        "            time.sleep(3); os._exit(0)\\n        ok += 1\\n    except OSError:\\n        break\\nprint(ok)"
    )
    print(sandbox.exec(["python3", "-c", program]).stdout.decode().strip(), flush=True)
    sandbox.close()
    """
)


@each_backend
def test_sandboxes_of_two_processes_each_fork_their_limit(backend):
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _FORKS, backend], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    pipes = [(p.stdin, p.stdout) for p in processes]
    uids = [out.readline().strip() for _, out in pipes if out]
    assert uids[0] != uids[1], uids
    for stdin, _ in pipes:
        assert stdin is not None
        stdin.write("\n")
        stdin.flush()
    forked = [p.communicate(timeout=60)[0].strip() for p in processes]
    assert forked == ["10", "10"], forked  # sharing one uid's 16 processes, one of them would fall short


@each_backend
def test_no_nested_namespaces_or_mounts(backend):
    sandbox = sandbox_of(backend)
    try:
        for command in ("unshare -Urm true", "unshare -U true", "unshare -n true"):
            result = sandbox.exec(command)
            assert result.exit_code != 0 and b"Operation not permitted" in result.stderr, (command, result.text())
        threads = sandbox.exec(
            ["python3", "-c", "import threading; t = threading.Thread(target=print, args=(7,)); t.start(); t.join()"]
        )
        assert threads.stdout == b"7\n", threads.text()  # clone3 refused, threads still start through clone
        if platform.machine() == "x86_64":  # the raw syscalls, past what unshare(1) tries
            raw = sandbox.exec(["python3", "-c", RAW_SYSCALLS])
            assert raw.stdout.split() == [b"-1", b"1", b"-1", b"1"], raw.text()  # -1 and EPERM, twice
    finally:
        sandbox.close()


# clone(CLONE_NEWUSER | SIGCHLD) and mount(2), each printing its return value and errno.
RAW_SYSCALLS = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print(libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0), ctypes.get_errno())
print(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None), ctypes.get_errno())
"""


@each_backend
def test_host_file_io_refuses_fifos_and_links(backend):
    sandbox = sandbox_of(backend)
    with open("/etc/passwd", "rb") as f:
        passwd = f.read()
    try:
        assert sandbox.exec("mkfifo pipe && mkdir d && ln -s /etc d/up && ln -s /etc/shadow shadow").ok
        for path, why in (
            ("pipe", "not a regular file"),
            ("shadow", "symbolic link"),
            ("d/up/passwd", "not a plain directory"),
        ):
            start = time.perf_counter()
            with pytest.raises(CwmError, match=why):
                sandbox.get_file(path)
            with pytest.raises(CwmError, match=why):
                sandbox.put_file(path, "x")
            assert time.perf_counter() - start < 5, path  # refused, not blocked
        with open("/etc/passwd", "rb") as f:
            assert f.read() == passwd  # the host file the link leads to was not written through it
        with pytest.raises(CwmError, match="outside the work directory"):
            sandbox.get_file("../../etc/passwd")
    finally:
        sandbox.close()


@pytest.mark.parametrize(
    "field, value",
    [("memory_mb", -5), ("memory_mb", 0), ("pids", 0), ("timeout_s", -1), ("max_output_bytes", -1), ("disk_mb", 0)],
)
def test_limits_must_be_positive(field, value):
    with pytest.raises(CwmError, match=f"sandbox limit {field} must be positive \\(got {value}\\)"):
        SandboxLimits(**{field: value})


_ABANDON = textwrap.dedent(
    """
    import sys, time
    from cwm_envs.sandbox_factory import make_sandbox
    sandbox = make_sandbox(sys.argv[1])
    sandbox.put_file("left.txt", "behind")
    print(sandbox.work_dir, flush=True)
    time.sleep(60)
    """
)


@each_backend
def test_a_killed_runs_sandbox_disks_are_removed(backend):
    process = subprocess.Popen([sys.executable, "-c", _ABANDON, backend], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    work_dir = process.stdout.readline().strip()
    root = os.path.dirname(os.path.dirname(work_dir))
    assert os.path.exists(os.path.join(work_dir, "left.txt"))
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert os.path.isdir(root)  # nothing of the killed process cleaned up after it
    assert remove_stale_disks() >= 1
    assert not os.path.exists(root)
    with open("/proc/mounts") as f:
        assert root not in f.read()
