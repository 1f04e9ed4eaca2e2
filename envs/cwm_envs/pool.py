"""A pool of warm sandboxes shared by threads: borrow one per task, get it back reset; a sandbox that died
is replaced; everything is removed at close, at interpreter exit and after Ctrl-C."""

import atexit
import contextlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from cwm_envs.sandbox import Sandbox


class SandboxPool:
    def __init__(self, factory: Callable[[], Sandbox], size: int):
        self._factory, self.size = factory, size
        self._idle: queue.Queue = queue.Queue()
        self._all: set = set()
        self._lock = threading.Lock()
        self._closed = False
        self.replaced = 0
        with ThreadPoolExecutor(max(1, size)) as pool:  # start them in parallel: containers take ~0.3 s
            for sandbox in pool.map(lambda _: self._new(), range(size)):
                self._idle.put(sandbox)
        atexit.register(self.close)

    def _new(self) -> Sandbox:
        sandbox = self._factory()
        with self._lock:
            self._all.add(sandbox)
        return sandbox

    @contextlib.contextmanager
    def sandbox(self, timeout: float | None = None):
        """Borrows a sandbox (waiting up to `timeout` seconds for one to be free)."""
        if self._closed:
            raise RuntimeError("the sandbox pool is closed")
        sandbox = self._idle.get(timeout=timeout)
        try:
            yield sandbox
        finally:
            self._give_back(sandbox)

    def _give_back(self, sandbox: Sandbox):
        if self._closed:
            return
        try:
            healthy = sandbox.alive()
            if healthy:
                sandbox.reset()
        except Exception:  # a backend that broke mid-reset is treated as dead
            healthy = False
        if not healthy:
            self._discard(sandbox)
            sandbox = self._new()
            self.replaced += 1
        self._idle.put(sandbox)

    def _discard(self, sandbox: Sandbox):
        with self._lock:
            self._all.discard(sandbox)
        try:
            sandbox.close()
        except Exception:
            pass

    def close(self):
        if self._closed:
            return
        self._closed = True
        with self._lock:
            sandboxes, self._all = list(self._all), set()
        for sandbox in sandboxes:
            try:
                sandbox.close()
            except Exception:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
