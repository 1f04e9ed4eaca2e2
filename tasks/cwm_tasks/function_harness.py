"""Grades a Python solution inside a sandbox so that the solution cannot fake its grade (stdlib only: it runs
as `python3 -I function_harness.py` with the config on stdin).

The harness process never runs solution code. It makes itself non-dumpable (no other process of the sandbox
user can read its memory, descriptors or stdout through /proc or ptrace), forks a zygote that knows only the
solution's source, and only then reads the tests from stdin. The tests run here, in the harness: every
function the solution defines is a proxy that sends its arguments to a worker, a fresh fork of the zygote
per test statement, which has loaded the solution and answers with the function's value. Values cross as
plain data only (None, bool, int, float, complex, str, bytes, and lists, tuples, sets, frozensets and dicts
of them), so a result object with an always-true `__eq__` fails, and the comparisons are the harness's
own. A worker has no descriptor but its socket, cannot fork, and is killed (its process group) after its
statement. Results go out on the harness's stdout as JSON lines, ending with {"done": N}, each line marked
with a nonce from the config that no worker has seen.

Functions of a trusted prelude (HumanEval's prompt: the helpers the tests call, such as `poly` or
`encode_cyclic`) are defined in the harness itself, so a solution cannot redefine what the tests check with.
"""

import ast
import builtins
import ctypes
import json
import os
import resource
import signal
import socket
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


def _send(sock: socket.socket, message: dict):
    sock.sendall(json.dumps(message).encode() + b"\n")


def _receive(sock: socket.socket, deadline: float) -> dict | None:
    """One line, or None if none came in time, the peer ended, or the line broke the protocol."""
    buffer = b""
    while b"\n" not in buffer:
        left = deadline - time.monotonic()
        if left <= 0 or len(buffer) > _MAX_REPLY:
            return None
        sock.settimeout(left)
        try:
            chunk = sock.recv(1 << 20)
        except (TimeoutError, OSError):
            return None
        if not chunk:
            return None
        buffer += chunk
    try:
        message = json.loads(buffer.split(b"\n", 1)[0])
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


# --- the worker: loads the solution and answers calls; everything it runs is untrusted -------------------


def _worker(sock: socket.socket, source: str):
    os.setpgid(0, 0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(3, sock.fileno())
    os.closerange(sock.fileno() + 1, 1 << 16)
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # no fork, no thread, no survivor
    namespace: dict = {"__name__": "solution"}
    try:
        exec(compile(source, "solution.py", "exec"), namespace)
        _send(sock, {"loaded": True})
    except BaseException as e:
        _send(sock, {"loaded": False, "error": repr(e)[:500]})
        os._exit(0)
    while True:
        request = _receive(sock, time.monotonic() + 3600)
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
        _send(sock, reply)


def _zygote(control: socket.socket, source: str):
    """Forks a worker per request and hands its socket to the harness; runs no solution code itself."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # killed workers are reaped by the kernel
    while _receive(control, time.monotonic() + 3600) is not None:
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            control.close()
            ours.close()
            _worker(theirs, source)
        theirs.close()
        socket.send_fds(control, [json.dumps({"pid": pid}).encode() + b"\n"], [ours.fileno()])
        ours.close()
    os._exit(0)


# --- the harness: trusted code only -----------------------------------------------------------------------


class Worker:
    def __init__(self, control: socket.socket, deadline: float):
        _send(control, {"fork": True})
        message, fds, _, _ = socket.recv_fds(control, 1024, 1)
        if not fds:
            raise Broken("the solution's processes could not be started")
        self.pid = json.loads(message)["pid"]
        self.sock = socket.socket(fileno=fds[0])
        self.deadline = deadline
        loaded = _receive(self.sock, deadline)
        self.load_error = None if loaded and loaded.get("loaded") is True else (loaded or {}).get("error", "no answer")

    def call(self, name: str, args: tuple, kwargs: dict):
        try:
            request = {"call": name, "args": encode(list(args)), "kwargs": [[k, encode(v)] for k, v in kwargs.items()]}
        except NotPlainData as e:
            raise TypeError(f"cannot pass {e} to the solution's {name}") from None
        _send(self.sock, request)
        reply = _receive(self.sock, self.deadline)
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
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.sock.close()


class Timeout(Exception):
    pass


class Broken(Exception):
    pass


def _proxy(name: str, current: list):
    def call(*args, **kwargs):
        return current[0].call(name, args, kwargs)

    call.__name__ = name
    return call


def _function_names(source: str) -> list[str]:
    try:
        return [n.name for n in ast.parse(source).body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []


def main():
    ctypes.CDLL(None).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    out = os.dup(1)  # results go here; anything the tests print goes nowhere
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)
    with open("solution.py") as f:
        source = f.read()
    control, zygote_end = socket.socketpair()
    if os.fork() == 0:
        os.dup2(devnull, 0)
        os.closerange(3, zygote_end.fileno())
        os.closerange(zygote_end.fileno() + 1, 1 << 16)
        _zygote(zygote_end, source)
    zygote_end.close()
    config = json.loads(sys.stdin.read())  # the tests: read only now, so no worker has them in memory
    end = time.monotonic() + config["timeout_s"]

    def report(record: dict):
        # The nonce marks the harness's lines: another process of the sandbox user that reaches the exec's
        # output (Docker's exec wrappers hold it) cannot know it.
        os.write(out, f"{config['nonce']} {json.dumps(record)}\n".encode())

    scope: dict = {"__name__": "tests"}
    exec(compile(config.get("prelude", ""), "prelude.py", "exec"), scope)
    current: list = [None]
    entry = config["entry_point"]
    for name in {entry, *_function_names(source)} - set(scope) | {entry}:
        scope[name] = _proxy(name, current)
    probe = Worker(control, end)
    probe.kill()
    if probe.load_error is not None:
        report({"name": "load solution", "passed": False, "detail": probe.load_error})
        report({"done": 1})
        return
    test_source = config["tests"]
    exec(compile(test_source, "tests.py", "exec"), scope)
    check = next(n for n in ast.parse(test_source).body if isinstance(n, ast.FunctionDef) and n.name == "check")
    scope[check.args.args[0].arg] = scope[entry]
    timed_out = False
    for statement in check.body:
        name = f"line {statement.lineno}: " + (ast.get_source_segment(test_source, statement) or "")[:120]
        if timed_out:
            report({"name": name, "passed": False, "detail": "not run: an earlier test ran out of time"})
            continue
        try:
            current[0] = Worker(control, end)
            exec(compile(ast.Module([statement], []), "tests.py", "exec"), scope)
            report({"name": name, "passed": True})
        except Timeout as e:
            timed_out = True
            report({"name": name, "passed": False, "detail": f"timeout: {e}"})
        except BaseException as e:
            report({"name": name, "passed": False, "detail": repr(e)[:500]})
        finally:
            if current[0] is not None:
                current[0].kill()
                current[0] = None
    report({"done": len(check.body)})


if __name__ == "__main__":
    main()
