"""How new policy weights reach the actors: in-process (a reference swap), or through a directory for
actors in other processes (or on other hosts sharing a filesystem)."""

import os
import re
import tempfile
import threading
import time

import jax
import numpy as np


class InProcessWeights:
    """Hands the sampler's own arrays to the actor thread (cwm_rl/sampler_layout.py places them in new
    buffers, which the learner never donates)."""

    def __init__(self, version: int, params):
        self._changed = threading.Condition()
        self._latest = (version, params)

    def publish(self, version: int, params):
        with self._changed:
            self._latest = (version, params)
            self._changed.notify_all()

    def wait_for(self, version: int, stopping):
        """The latest (version, params) once its version is at least `version`; None if stopping() first."""
        with self._changed:
            while self._latest[0] < version:
                if stopping():
                    return None
                self._changed.wait(timeout=0.5)
            return self._latest


class DirectoryWeights:
    """`version-N.npz` files written atomically (temp file + rename); readers take the highest N."""

    _NAME = re.compile(r"version-(\d+)\.npz$")

    def __init__(self, directory: str, keep: int = 2):
        self.directory, self.keep = directory, keep
        os.makedirs(directory, exist_ok=True)

    def publish(self, version: int, params):
        flat = {
            "/".join(str(getattr(k, "key", k)) for k in path): np.asarray(leaf)
            for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]
        }
        fd, temp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, allow_pickle=True, **flat)  # the default, named so no array name can take its place
        os.replace(temp, os.path.join(self.directory, f"version-{version}.npz"))
        for old in self._versions()[: -self.keep]:
            os.remove(os.path.join(self.directory, f"version-{old}.npz"))

    def _versions(self) -> list[int]:
        return sorted(int(m.group(1)) for m in map(self._NAME.match, os.listdir(self.directory)) if m)

    def latest(self, like=None):
        """(version, params) of the newest file; params take the structure of `like` (a params tree)."""
        while True:
            versions = self._versions()
            if not versions:
                return None
            try:
                with np.load(os.path.join(self.directory, f"version-{versions[-1]}.npz")) as data:
                    flat = {k: data[k] for k in data.files}
                break
            except FileNotFoundError:  # replaced by newer versions while we listed: list again
                continue
        if like is None:
            return versions[-1], flat
        paths = [
            ("/".join(str(getattr(k, "key", k)) for k in path))
            for path, _ in jax.tree_util.tree_flatten_with_path(like)[0]
        ]
        return versions[-1], jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(like), [flat[p] for p in paths])

    def wait_for(self, version: int, like, stopping, poll_s: float = 0.05):
        """The newest (version, params) once a version >= `version` is published; None if stopping() first."""
        while not stopping():
            if self._versions() and self._versions()[-1] >= version:
                return self.latest(like)
            time.sleep(poll_s)
        return None
