"""Grades a Python solution inside a sandbox so that the solution cannot fake its grade (stdlib only: it runs
as `python3 -I function_harness.py` with the config on stdin).

The harness process never runs solution code. It makes itself non-dumpable (no other process of the sandbox
user can read its memory, descriptors or stdout through /proc or ptrace), forks the worker, which knows only
the solution's source, and only then reads the tests from stdin. The tests run here, in the harness: every
function the solution defines is a proxy that sends its arguments to the worker, which has loaded the
solution and answers with the function's value. Values cross as plain data only (None, bool, int, float,
complex, str, bytes, and lists, tuples, sets, frozensets and dicts of them), so a result object with an
always-true `__eq__` fails, and the comparisons are the harness's own. The worker has no descriptor but its
two pipes and cannot fork; once it dies, breaks the protocol or runs out of time, the statements left fail
(a worker to replace it would have to come from a process that has not seen the tests), and it is killed
with its process group at the end. The worker runs no solution code before the harness has drained stdin
(Docker's exec wrappers, processes of the sandbox user, hold that pipe too), and results go out only once the
worker is gone: JSON lines on the harness's stdout, ending with {"done": N}, each marked with a nonce from
the config that no process running solution code could have read.

Functions of a trusted prelude (HumanEval's prompt: the helpers the tests call, such as `poly` or
`encode_cyclic`) are defined in the harness itself, so a solution cannot redefine what the tests check with.
"""

import ast
import builtins
import ctypes
import gc
import json
import os
import resource
import select
import sys
import time

_PR_SET_DUMPABLE = 4
_MAX_REPLY = 64 << 20


class NotPlainData(TypeError):
    pass


_SEQUENCES: dict[type, str] = {list: "L", tuple: "T", set: "E", frozenset: "Z"}
_BY_TAG = {tag: kind for kind, tag in _SEQUENCES.items()}


def encode(value):
    kind = type(value)  # exact types: a subclass could carry its own __eq__
    if value is None:
        return ["N"]
    if kind is bool:
        return ["B", value]
    if kind is int:
        return ["I", str(value)]
    if kind is float:
        return ["F", value.hex()]
    if kind is complex:
        return ["C", value.real.hex(), value.imag.hex()]
    if kind is str:
        return ["S", value]
    if kind is bytes:
        return ["Y", value.hex()]
    if kind in _SEQUENCES:
        return [_SEQUENCES[kind], [encode(item) for item in value]]
    if kind is dict:
        return ["D", [[encode(k), encode(v)] for k, v in value.items()]]
    raise NotPlainData(f"a {kind.__name__} is not plain data")


def decode(data):
    tag = data[0]
    if tag == "N":
        return None
    if tag == "B":
        return bool(data[1])
    if tag == "I":
        return int(data[1])
    if tag == "F":
        return float.fromhex(data[1])
    if tag == "C":
        return complex(float.fromhex(data[1]), float.fromhex(data[2]))
    if tag == "S":
        return str(data[1])
    if tag == "Y":
        return bytes.fromhex(data[1])
    if tag in _BY_TAG:
        return _BY_TAG[tag](decode(item) for item in data[1])
    if tag == "D":
        return {decode(k): decode(v) for k, v in data[1]}
    raise ValueError(f"unknown tag {tag!r}")


class Channel:
    """JSON lines over a pair of pipes, each read bounded by a deadline."""

    def __init__(self, read_fd: int, write_fd: int):
        self.read_fd, self.write_fd = read_fd, write_fd

    def send(self, message: dict):
        data = json.dumps(message).encode() + b"\n"
        while data:
            data = data[os.write(self.write_fd, data) :]

    def receive(self, deadline: float) -> dict | None:
        """One line, or None if none came in time, the peer ended, or the line broke the protocol."""
        buffer = b""
        while b"\n" not in buffer:
            left = deadline - time.monotonic()
            if left <= 0 or len(buffer) > _MAX_REPLY or not select.select([self.read_fd], [], [], left)[0]:
                return None
            chunk = os.read(self.read_fd, 65536)
            if not chunk:
                return None
            buffer += chunk
        try:
            message = json.loads(buffer.split(b"\n", 1)[0])
        except (ValueError, RecursionError):
            return None
        return message if isinstance(message, dict) else None

    def close(self):
        os.close(self.read_fd)
        os.close(self.write_fd)


# --- the worker: loads the solution and answers calls; everything it runs is untrusted -------------------


def _worker(channel: Channel, source: str):
    os.setpgid(0, 0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    for fd in [int(name) for name in os.listdir("/proc/self/fd")]:
        if fd > 2 and fd not in (channel.read_fd, channel.write_fd):
            try:
                os.close(fd)
            except OSError:  # the listing's own descriptor, already gone
                pass
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # no fork, no thread, no survivor
    if channel.receive(time.monotonic() + 3600) is None:  # "go": the harness has read all of stdin
        os._exit(0)
    namespace: dict = {"__name__": "solution"}
    try:
        exec(compile(source, "solution.py", "exec"), namespace)
        channel.send({"loaded": True})
    except BaseException as e:
        channel.send({"loaded": False, "error": repr(e)[:500]})
        os._exit(0)
    while True:
        request = channel.receive(time.monotonic() + 3600)
        if request is None:
            os._exit(0)
        try:
            function = namespace[request["call"]]
            value = function(*decode(request["args"]), **{k: decode(v) for k, v in request["kwargs"]})
            reply = {"value": encode(value)}
        except NotPlainData as e:
            reply = {"raised": ["TypeError", f"{request['call']} returned {e}; only plain data is compared"]}
        except BaseException as e:
            reply = {"raised": [type(e).__name__, str(e)[:500]]}
        channel.send(reply)


# Standard modules a solution's imports may name that the harness imports before forking the worker, so that
# neither the worker nor the prelude imports them again (typing alone takes longer than forking).
_PRELOADED = {"typing", "math", "re", "collections", "itertools", "functools", "heapq", "bisect", "string"}


# --- the harness: trusted code only -----------------------------------------------------------------------


class Worker:
    def __init__(self, source: str, deadline: float):
        to_worker, from_worker = os.pipe(), os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(to_worker[1])
            os.close(from_worker[0])
            _worker(Channel(to_worker[0], from_worker[1]), source)
        os.close(to_worker[0])
        os.close(from_worker[1])
        self.channel, self.deadline = Channel(from_worker[0], to_worker[1]), deadline
        self.load_error: str | None = None

    def loaded(self) -> bool:
        answer = self.channel.receive(self.deadline)
        if not (answer and answer.get("loaded") is True):
            self.load_error = str((answer or {}).get("error", "no answer"))
        return self.load_error is None

    def call(self, name: str, args: tuple, kwargs: dict):
        try:
            request = {"call": name, "args": encode(list(args)), "kwargs": [[k, encode(v)] for k, v in kwargs.items()]}
        except NotPlainData as e:
            raise TypeError(f"cannot pass {e} to the solution's {name}") from None
        try:
            self.channel.send(request)
        except OSError:  # the worker is gone
            raise Broken(f"{name}'s process ended") from None
        reply = self.channel.receive(self.deadline)
        if reply is None:
            raise (
                Timeout(f"{name} gave no answer in time")
                if time.monotonic() >= self.deadline
                else Broken(f"{name}'s process ended or broke the protocol")
            )
        if "value" in reply:
            try:
                return decode(reply["value"])
            except (ValueError, TypeError, KeyError, IndexError, RecursionError) as e:
                raise Broken(f"{name} answered out of protocol ({e})") from None
        name_, message = (reply.get("raised") or ["Exception", ""])[:2]
        kind = getattr(builtins, name_, None) if isinstance(name_, str) else None
        if isinstance(kind, type) and issubclass(kind, Exception):
            raise kind(message)
        raise RuntimeError(f"{name_}: {message}")

    def kill(self):
        try:
            os.killpg(self.pid, 9)  # SIGKILL
        except (ProcessLookupError, PermissionError):
            pass
        os.waitpid(self.pid, 0)
        self.channel.close()


class Timeout(Exception):
    pass


class Broken(Exception):
    pass


def _proxy(name: str, worker: Worker):
    def call(*args, **kwargs):
        return worker.call(name, args, kwargs)

    call.__name__ = name
    return call


def _outline(source: str) -> tuple[set[str], set[str]]:
    """The modules the solution's top level imports and the functions it defines, parsed once (nothing of
    it runs here); empty for source that does not parse."""
    try:
        body = ast.parse(source).body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set(), set()
    modules: set[str] = set()
    for node in body:
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module)
    functions = {n.name for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return modules, functions


def main():
    ctypes.CDLL(None).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    out = os.dup(1)  # results go here; anything the tests print goes nowhere
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)
    with open("solution.py") as f:
        source = f.read()
    modules, functions = _outline(source)
    for module in modules & _PRELOADED:
        __import__(module)
    gc.freeze()  # the collector then leaves the objects both processes share alone: fewer copied pages
    worker = Worker(source, time.monotonic() + 3600)
    config = json.loads(sys.stdin.read())  # the tests: read only now, so the worker never has them in memory
    # Only now may solution code run: the stdin pipe (which Docker's exec wrappers also hold) is drained.
    worker.channel.send({"go": True})
    worker.deadline = time.monotonic() + config["timeout_s"]
    test_source = config["tests"]
    scope: dict = {"__name__": "tests"}
    exec(compile(config.get("prelude", ""), "prelude.py", "exec"), scope)
    entry = config["entry_point"]
    # Proxies: the entry point and the solution's functions the tests name, never a builtin or a prelude
    # helper (a solution's `def abs` must not become the tests' abs).
    tests = ast.parse(test_source)
    named = {n.id for n in ast.walk(tests) if isinstance(n, ast.Name)}
    for name in (functions & named) - set(scope) - set(vars(builtins)) | {entry}:
        scope[name] = _proxy(name, worker)
    if worker.loaded():
        exec(compile(test_source, "tests.py", "exec"), scope)
        check = next(n for n in tests.body if isinstance(n, ast.FunctionDef) and n.name == "check")
        scope[check.args.args[0].arg] = scope[entry]
        records = _run_statements(check.body, test_source, scope)
    else:
        records = [{"name": "load solution", "passed": False, "detail": worker.load_error}]
    worker.kill()
    # Written only now, with no process that ran solution code left: none can read the nonce off the output.
    lines = [*records, {"done": len(records)}]
    os.write(out, "".join(f"{config['nonce']} {json.dumps(line)}\n" for line in lines).encode())


def _run_statements(statements: list, test_source: str, scope: dict) -> list[dict]:
    records = []
    ended = None  # why the worker can serve no more statements
    for statement in statements:
        name = f"line {statement.lineno}: " + (ast.get_source_segment(test_source, statement) or "")[:120]
        if ended:
            records.append({"name": name, "passed": False, "detail": f"not run: {ended}"})
            continue
        try:
            exec(compile(ast.Module([statement], []), "tests.py", "exec"), scope)
            records.append({"name": name, "passed": True})
        except (Timeout, Broken) as e:
            ended = f"an earlier test ended the solution's process ({e})"
            records.append({"name": name, "passed": False, "detail": f"{type(e).__name__.lower()}: {e}"})
        except BaseException as e:
            records.append({"name": name, "passed": False, "detail": repr(e)[:500]})
    return records


if __name__ == "__main__":
    main()
