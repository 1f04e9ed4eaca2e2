"""A pool of Math-Verify worker processes (math_worker.py) with a hard deadline per comparison.

Sympy can hold the GIL for minutes on a policy's `\\boxed{9^{9^{9^{9}}}}`, and Math-Verify's timeouts
(SIGALRM) only work on a main thread, so comparing in the caller's process could freeze an RL run from a
rollout thread. Here a comparison runs in a worker; one that outlives the deadline is killed, and the
answer counts as a timeout. Workers start on demand (one per concurrent caller) and are reused.
"""

import atexit
import json
import os
import selectors
import subprocess
import sys
import threading
import time

DEADLINE_S = 20.0  # the worker's own parse + verify timeouts (3 x 5 s) come first


class _Worker:
    def __init__(self):
        self.process = subprocess.Popen([sys.executable, "-m", "cwm_envs.tasks.math_worker"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._buffer = b""

    def ask(self, request: dict, deadline_s: float) -> dict | None:
        """The worker's reply, or None if it did not answer in time (it is then dead)."""
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        self.process.stdin.flush()
        end = time.monotonic() + deadline_s
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = end - time.monotonic()
                if left <= 0 or not selector.select(left):
                    self.kill()
                    return None
                chunk = os.read(self.process.stdout.fileno(), 65536)
                if not chunk:  # the worker died
                    self.kill()
                    return None
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def kill(self):
        self.process.kill()
        self.process.wait()


_idle: list[_Worker] = []
_all: list[_Worker] = []
_lock = threading.Lock()


def compare_in_worker(answer: str, reference: str, deadline_s: float = DEADLINE_S) -> dict | None:
    """{"equal": bool} or {"error": why} from a worker; None when the comparison outlived the deadline."""
    for _ in range(2):  # a second try only if the worker had died before it got the request
        worker = _borrow()
        try:
            reply = worker.ask({"answer": answer, "reference": reference}, deadline_s)
        except BrokenPipeError:
            worker.kill()
            _give_back(worker)
            continue
        _give_back(worker)
        return reply
    return None


def _borrow() -> _Worker:
    with _lock:
        if _idle:
            return _idle.pop()
    worker = _Worker()
    with _lock:
        _all.append(worker)
    return worker


def _give_back(worker: _Worker):
    with _lock:
        if worker.process.poll() is None:
            _idle.append(worker)
        else:
            _all.remove(worker)


@atexit.register
def _stop_workers():
    for worker in list(_all):
        worker.kill()
