"""Runs a task's tests with pytest inside a sandbox and reports each test's outcome on a channel the code
under test cannot write (stdlib and pytest only: it runs as `python3 -I -S pytest_runner.py REPO TEST_FILE...`
with its deadline and a nonce on stdin).

The runner process is trusted: it makes itself non-dumpable (no process of the sandbox user can read its
memory or descriptors through /proc or ptrace), imports pytest before the repository is on sys.path (so a
`pytest.py` in the repository shadows nothing), and forks the test run. The child runs no repository code
before the runner has drained stdin (which Docker's exec wrappers also hold), and runs pytest with its
stdout sent to stderr, so whatever the code under test prints is only log. A plugin registered before any
repository code is imported reports each test phase over a pipe and, when the session finishes, which of
pytest's reporting functions were replaced and which hook implementations come from repository code. The
runner then kills the run's process group and, in a sandbox whose user is its own, every other process of
that user but its ancestors (what escaped the group with setsid), and only then writes the outcomes,
marked with the nonce it read after the fork, to its stdout, the result channel. The run counts as finished
only if its session reached its end: a run that exits early (`os._exit(0)` under pytest) does not.

What this cannot stop, and the threat model in WORKSPACE.md says so: code that deliberately finds the pipe
in its own process and writes forged reports into it.
"""

import ctypes
import importlib
import json
import os
import select
import signal
import site
import sys
import sysconfig
import time


def _site_packages() -> list[str]:
    """This interpreter's site-packages, as `site` would find them (a virtual environment's when run from
    one), without running `site`."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
    if os.path.isfile(os.path.join(root, "pyvenv.cfg")):
        sys.prefix = sys.exec_prefix = root  # as site's venv() sets them
        return [sysconfig.get_path("purelib", vars={"base": root, "platbase": root})]
    return site.getsitepackages()


# Started with -I -S: site-packages go on the path without their .pth files, which can put the repository on
# sys.path (an editable install does) before pytest and what it imports are loaded; the test process adds
# them properly after the fork.
SITE_PACKAGES = _site_packages()
sys.path.extend(d for d in SITE_PACKAGES if d not in sys.path)
pytest = importlib.import_module("pytest")

_PR_SET_DUMPABLE = 4
_MAX_REPORTS = 64 << 20  # bytes of phase reports; more is a flood, not a test run
# pytest's and pluggy's reporting path: functions that decide or carry a test's outcome.
_GUARDED = (
    "_pytest.runner",
    "_pytest.reports",
    "_pytest.python",
    "_pytest.main",
    "_pytest.outcomes",
    "_pytest.skipping",
    "_pytest.unittest",
    "_pytest.fixtures",
    "pluggy._callers",
    "pluggy._hooks",
    "pluggy._manager",
    "pluggy._result",
)


def _functions(module) -> dict:
    """(module, name) -> (object, code) of the module's functions and classes and its classes' methods
    (class and static methods and properties included): replacing one, or its code, shows."""
    found = {}
    for name, value in vars(module).items():
        members = vars(value).items() if isinstance(value, type) and value.__module__ == module.__name__ else ()
        for key, item in [(name, value), *((f"{name}.{k}", v) for k, v in members)]:
            if callable(item) or isinstance(item, (classmethod, staticmethod, property)):
                found[(module.__name__, key)] = (item, getattr(getattr(item, "__func__", item), "__code__", None))
    return found


class Reporter:
    """The plugin: test phases and the session's end, over the pipe to the runner."""

    def __init__(self, fd: int, repo: str):
        self.fd, self.repo = fd, os.path.realpath(repo)
        self.modules = [importlib.import_module(name) for name in _GUARDED]
        self.snapshot = {k: v for m in self.modules for k, v in _functions(m).items()}
        self.hook_executor = importlib.import_module("pluggy._callers")._multicall

    def _write(self, record: dict, dumps=json.dumps, write=os.write):
        # dumps and write are bound here: code under test that patches json or os later does not reach them.
        write(self.fd, (dumps(record) + "\n").encode())

    def pytest_runtest_logreport(self, report):
        self._write({"id": report.nodeid, "when": report.when, "outcome": report.outcome})

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session):
        self._write({"finished": True, "tampered": self.tampered(session.config)})

    def tampered(self, config) -> list[str]:
        now = {k: v for m in self.modules for k, v in _functions(m).items()}
        changed = [
            f"{module}.{name}"
            for (module, name), (item, code) in self.snapshot.items()
            if (module, name) not in now
            or now[(module, name)][0] is not item
            or getattr(getattr(item, "__func__", item), "__code__", None) is not code
        ]
        manager = config.pluginmanager
        if manager._inner_hookexec is not self.hook_executor:
            changed.append("the plugin manager's hook executor")
        return changed + [f"hook {h}" for h in self._repository_hooks(manager)]

    def _repository_hooks(self, manager) -> list[str]:
        """Hook implementations written in repository code other than its conftest files (restored from the
        task), whatever registered them: a module, a class, an instance, a namespace."""
        found = []
        for caller in vars(manager.hook).values():
            for hook in getattr(caller, "get_hookimpls", list)():
                code = getattr(hook.function, "__code__", None)
                path = os.path.realpath(code.co_filename) if code else ""
                if path.startswith(self.repo + os.sep) and os.path.basename(path) != "conftest.py":
                    found.append(f"{hook.function.__name__} in {path[len(self.repo) + 1 :]}")
        return found


def _run_tests(fd: int, go: int, repo: str, test_files: list[str]):
    os.setpgid(0, 0)
    os.dup2(2, 1)  # pytest's and the tests' output is log, never the result channel
    os.read(go, 1)  # no repository code runs before the runner has drained stdin (Docker's wrappers hold it)
    os.close(go)
    for directory in SITE_PACKAGES:
        site.addsitedir(directory)  # now the .pth files: an editable install's path to the repository
    root = os.path.realpath(repo)
    os.chdir(root)
    sys.path.insert(0, root)  # as `python -m pytest` run in the repository
    reporter = Reporter(fd, root)
    code = pytest.main(["-q", "-rA", "-p", "no:cacheprovider", *test_files], plugins=[reporter])
    sys.stdout.flush()  # the log; os._exit skips the flush at exit
    os._exit(int(code))


def _outcomes(records: list[dict]) -> dict[str, str]:
    """A test passed if its call passed and neither its setup nor its teardown failed."""
    outcome: dict[str, str] = {}
    for record in records:
        test, when, result = record.get("id"), record.get("when"), record.get("outcome")
        if not isinstance(test, str):
            continue
        if result != "passed":
            outcome[test] = f"{when}: {result}" if outcome.get(test, "passed") == "passed" else outcome[test]
        elif when == "call" and test not in outcome:
            outcome[test] = "passed"
    return outcome


def main():
    ctypes.CDLL(None).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    repo, test_files = sys.argv[1], sys.argv[2:]
    out = os.dup(1)
    read_end, write_end = os.pipe()
    go_read, go_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # the nonce arrives on stdin: never for the tests
        for fd in (read_end, out, go_write):
            os.close(fd)
        _run_tests(write_end, go_read, repo, test_files)
    os.close(write_end)
    os.close(go_read)
    config = json.loads(sys.stdin.read())  # only now, so the test process cannot have it in memory
    os.write(go_write, b"g")
    os.close(go_write)
    deadline = time.monotonic() + config["timeout_s"]
    buffer, timed_out = b"", False
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([read_end], [], [], left)[0]:
            timed_out = True
            break
        chunk = os.read(read_end, 1 << 16)
        if not chunk or len(buffer) > _MAX_REPORTS:
            break
        buffer += chunk
    try:
        os.killpg(pid, signal.SIGKILL)  # the run and anything it left behind in its group
    except (ProcessLookupError, PermissionError):
        pass
    os.waitpid(pid, 0)
    if config["own_user"] and os.getuid() != 0:  # never outside a sandbox with a user of its own
        _end_other_processes()
    records = []
    for line in buffer.decode(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    finished = [r for r in records if r.get("finished") is True]
    result = {
        "outcomes": _outcomes(records),
        "finished": bool(finished) and not timed_out,
        "tampered": finished[-1].get("tampered", []) if finished else [],
    }
    # Written with no process that ran repository code left, so none can read the nonce off the output.
    os.write(out, f"{config['nonce']} {json.dumps(result)}\n".encode())


def _end_other_processes():
    """Kills every process of this user but this one and its ancestors (what escaped the run's process
    group with setsid), until none is left."""
    keep, pid = set(), os.getpid()
    while pid > 1:
        keep.add(pid)
        pid = _status(pid).get("PPid", 0)
    for _ in range(50):
        others = [p for p in _user_processes() if p not in keep]
        if not others:
            return
        for other in others:
            try:
                os.kill(other, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)


def _status(pid: int) -> dict[str, int]:
    """The numeric first fields of /proc/PID/status (Uid, PPid, ...), {} for a process that is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return {
                k: int(v.split()[0])
                for k, v in (line.split(":", 1) for line in f)
                if v.split()[:1] and v.split()[0].isdigit()
            }
    except OSError:
        return {}


def _user_processes() -> list[int]:
    uid = os.getuid()
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and _status(int(p)).get("Uid") == uid]


if __name__ == "__main__":
    main()
