"""Hostile code through every command that traces it (`cwm trace`, `cwm gen-traces functions|programs|repo`),
on each backend: it cannot touch the host's files, reach the host's network, run as root, outlive its trace
or take the generator down; each attack ends with a status and the next item is traced."""

import json
import os
import pathlib
import socket
import threading
import time

import pytest
from array_record.python.array_record_data_source import ArrayRecordDataSource
from sandbox_fixtures import BACKENDS

from cwm_cli.main import main
from cwm_data.trace_frames import EXCEPTION_EXIT, KILLED, MEMORY_LIMIT, OK

ATTACKS = """
import os, signal, socket, subprocess


def write_host(path):
    with open(path, "w") as f:
        f.write("pwned")
    return os.path.exists(path)


def delete_host(path):
    os.remove(path)
    return "deleted"


def read_shadow(path):
    with open("/etc/shadow") as f:
        return f.read()


def list_root(path):
    return sorted(os.listdir("/root"))


def connect_host(port):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"from the sandbox")
    return "connected"


def fork_bomb(n):
    while True:
        os.fork()


def memory_bomb(n):
    blocks = []
    while True:
        blocks.append(bytearray(50_000_000))


def kill_parent(n):
    os.kill(os.getppid(), signal.SIGKILL)
    return "survived"  # bwrap: the server is its namespace's init and cannot be signalled from inside


def whoami(n):
    return os.getuid(), os.geteuid()


def setsid_survivor(marker):
    os.setsid()
    subprocess.Popen(["sleep", marker], start_new_session=True)
    return "spawned"


def add(a, b):
    return a + b
"""
# The statuses each attack may end with (some backends show an empty /root, others none).
EXPECTED = {
    "write_host": {EXCEPTION_EXIT},
    "delete_host": {EXCEPTION_EXIT},
    "read_shadow": {EXCEPTION_EXIT},
    "list_root": {EXCEPTION_EXIT, OK},
    "connect_host": {EXCEPTION_EXIT},
    "fork_bomb": {EXCEPTION_EXIT},
    "memory_bomb": {MEMORY_LIMIT},
    "kill_parent": {KILLED, OK},
    "whoami": {OK},
    "setsid_survivor": {EXCEPTION_EXIT},
    "add": {OK},
}
SURVIVOR = "31337"  # `sleep 31337`: no such process may be left


def _dropped(backend: str) -> dict:
    """What generation drops: the memory bomb, and on Docker the trace that killed its server."""
    return {"memory_limit": 1} if backend == "bwrap" else {"killed": 1, "memory_limit": 1}


class Host:
    """What the attacks aim at: files, a listening port; and the checks that they were missed."""

    def __init__(self, root: pathlib.Path):
        self.dir = root / "host"
        self.dir.mkdir()
        self.keep = self.dir / "keep.txt"
        self.keep.write_text("precious")
        self.target = self.dir / "pwned.txt"
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.connections: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                self.connections.append(self.listener.accept())
            except OSError:
                pass

    def arguments(self, attack: str) -> list:
        if attack == "write_host":
            return [str(self.target)]
        if attack in ("delete_host", "read_shadow", "list_root"):
            return [str(self.keep)]
        if attack == "connect_host":
            return [self.port]
        if attack == "setsid_survivor":
            return [SURVIVOR]
        return [1, 2] if attack == "add" else [0]

    def argument(self, attack: str) -> str:
        """The arguments as Python source (EXAMPLES, programs' stdin, test calls)."""
        return ", ".join(map(repr, self.arguments(attack)))

    def assert_untouched(self):
        self._stop.set()
        self._thread.join()
        self.listener.close()
        assert self.keep.read_text() == "precious" and not self.target.exists()
        assert self.connections == []
        assert _processes_with(f"sleep {SURVIVOR}") == []
        # Every server ended with its command (a closed server's namespace goes within moments).
        deadline = time.monotonic() + 10
        while _processes_with("cwm_data.trace_server") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _processes_with("cwm_data.trace_server") == []


def _processes_with(text: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read().replace(b"\0", b" "):
                    found.append(int(pid))
        except OSError:
            pass
    return found


def _records(out: pathlib.Path, prefix: str) -> list[dict]:
    paths = sorted(str(p) for p in out.glob(f"{prefix}-*.arrayrecord"))
    return [json.loads(r) for r in ArrayRecordDataSource(paths)] if paths else []


def _assert_nothing_secret(text: str):
    with open("/etc/shadow") as f:
        assert f.readline().split(":")[0] + ":" not in text  # the host's first shadow entry ("root:")
    assert not any(name in text for name in os.listdir("/root") if len(name) > 3)


@pytest.fixture
def host(tmp_path):
    return Host(tmp_path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cwm_trace_contains_every_attack(backend, host, tmp_path, capsys):
    source = tmp_path / "attacks.py"
    source.write_text(ATTACKS)
    for attack, statuses in EXPECTED.items():
        args = ["trace", str(source), "--entry", attack, "--args", json.dumps(host.arguments(attack))]
        code = main([*args, "--format", "json", "--timeout", "3", "--memory-mb", "300", "--backend", backend])
        out = capsys.readouterr().out
        result = json.loads(out)
        assert result["status"] in statuses, (attack, result["status"], result["error"])
        assert code == (0 if result["status"] in (OK, EXCEPTION_EXIT) else 1)
        _assert_nothing_secret(out)
        if attack == "whoami":
            uid, euid = json.loads(result["frames"][-1]["value"].replace("(", "[").replace(")", "]"))
            assert uid != 0 and euid != 0
    host.assert_untouched()


@pytest.mark.parametrize("backend", BACKENDS)
def test_gen_traces_functions_contains_every_attack_and_goes_on(backend, host, tmp_path):
    examples = {attack: [host.argument(attack)] for attack in EXPECTED}
    (tmp_path / "attacks.py").write_text(f"{ATTACKS}\nEXAMPLES = {examples!r}\n")
    out = tmp_path / "out"
    args = ["gen-traces", "functions", str(tmp_path / "attacks.py"), "--out", str(out), "--per-function", "1"]
    assert main([*args, "--timeout", "3", "--memory-mb", "300", "--workers", "2", "--backend", backend]) == 0
    report = json.loads((out / "functions-report.json").read_text())
    kept = {r["entry"]: r for r in _records(out, "functions")}
    assert report["jobs"] == len(EXPECTED) and report["kept"] == len(kept)
    assert report["dropped"] == _dropped(backend)
    assert kept["add"]["frames"][-1]["value"] == "3"  # the run went on past every attack
    assert {r["status"] for r in kept.values()} <= {OK, EXCEPTION_EXIT}
    _assert_nothing_secret(json.dumps(list(kept.values())))
    host.assert_untouched()


@pytest.mark.parametrize("backend", BACKENDS)
def test_gen_traces_programs_contains_every_attack_and_goes_on(backend, host, tmp_path):
    programs = tmp_path / "programs"
    programs.mkdir()
    for attack in EXPECTED:  # each attack as a program that reads its argument from stdin
        (programs / f"{attack}.py").write_text(f"{ATTACKS}\nprint({attack}(*eval(input() + ',')))\n")
        (programs / f"{attack}.inputs.json").write_text(json.dumps([host.argument(attack)]))
    out = tmp_path / "out"
    args = ["gen-traces", "programs", str(programs), "--out", str(out), "--timeout", "3", "--memory-mb", "300"]
    assert main([*args, "--workers", "2", "--backend", backend]) == 0
    report = json.loads((out / "programs-report.json").read_text())
    kept = {pathlib.Path(r["origin"]).stem: r for r in _records(out, "programs")}
    assert report["jobs"] == len(EXPECTED) and report["dropped"] == _dropped(backend)
    assert kept["add"]["stdout"] == "3\n"
    _assert_nothing_secret(json.dumps(list(kept.values())))
    host.assert_untouched()


@pytest.mark.parametrize("backend", BACKENDS)
def test_gen_traces_repo_contains_a_hostile_suite(backend, host, tmp_path, textkit_env):
    """A suite that attacks, then one that kills its server: both reported, the host untouched, and a
    well-behaved repository traced next as usual."""
    hostile = tmp_path / "hostile"
    (hostile / "lib").mkdir(parents=True)
    (hostile / "tests").mkdir()
    (hostile / "lib" / "__init__.py").write_text("")
    (hostile / "lib" / "attacks.py").write_text(ATTACKS)
    calls = "\n".join(
        f"def test_{attack}():\n    attacks.{attack}({host.argument(attack)})\n"
        for attack in EXPECTED
        if attack != "kill_parent"
    )
    (hostile / "tests" / "test_attacks.py").write_text(f"from lib import attacks\n\n{calls}")
    (hostile / "link_to_shadow").symlink_to("/etc/shadow")  # never followed on the host
    common = ["--env", textkit_env, "--backend", backend, "--suite-timeout", "120", "--memory-mb", "300"]
    assert main(["gen-traces", "repo", str(hostile), "--out", str(tmp_path / "out"), *common]) == 0
    report = json.loads((tmp_path / "out" / "repo-hostile-report.json").read_text())
    assert report["pytest_exit_code"] == 1  # the attacks failed as tests; the suite ran to its end
    episodes = _records(tmp_path / "out", "repo-hostile")
    assert any("def add" in e["frames"][0]["line"] for e in episodes)
    _assert_nothing_secret(json.dumps(episodes))

    killer = tmp_path / "killer"
    (killer / "tests").mkdir(parents=True)
    (killer / "tests" / "test_kill.py").write_text(
        "import os, signal\n\ndef test_kill():\n    os.kill(os.getppid(), signal.SIGKILL)\n"
    )
    assert main(["gen-traces", "repo", str(killer), "--out", str(tmp_path / "out2"), *common]) == 0
    report = json.loads((tmp_path / "out2" / "repo-killer-report.json").read_text())
    if backend == "bwrap":  # the kill cannot reach the server: the suite simply passes
        assert report["pytest_exit_code"] == 0
    else:
        assert report["dropped"] == {"suite_failed_to_run": 1} and report["pytest_exit_code"] is None

    textkit = pathlib.Path(__file__).resolve().parents[1] / "data" / "corpus" / "repos" / "textkit"
    assert main(["gen-traces", "repo", str(textkit), "--out", str(tmp_path / "out3"), *common]) == 0
    assert json.loads((tmp_path / "out3" / "repo-textkit-report.json").read_text())["pytest_exit_code"] == 0
    host.assert_untouched()
