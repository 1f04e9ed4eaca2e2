"""Math-Verify comparisons in worker processes (math_verify_worker.py) with a hard deadline each.

Sympy can hold the GIL for minutes on a policy's `\\boxed{9^{9^{9^{9}}}}`, and Math-Verify's timeouts
(SIGALRM) only work on a main thread, so comparing in the caller's process could freeze an RL run from a
rollout thread. Here a comparison runs in a worker; one that outlives the deadline is killed, and the
answer counts as a timeout. Workers start on demand (one per concurrent caller) and are reused.
"""

import atexit
import sys
import threading

from cwm_envs.bounded_process import LineWorker

DEADLINE_S = 20.0  # the worker's own parse + verify timeouts (3 x 5 s) come first
WORKER = [sys.executable, "-m", "cwm_tasks.math_verify_worker"]

_idle: list[LineWorker] = []
_all: list[LineWorker] = []
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


def _borrow() -> LineWorker:
    with _lock:
        if _idle:
            return _idle.pop()
    worker = LineWorker(WORKER)
    with _lock:
        _all.append(worker)
    return worker


def _give_back(worker: LineWorker):
    with _lock:
        if worker.alive():
            _idle.append(worker)
        else:
            _all.remove(worker)


@atexit.register
def _stop_workers():
    for worker in list(_all):
        worker.kill()
