"""How new policy weights reach the actors: in-process (a reference swap), or through a directory for
actors in other processes (or on other hosts sharing a filesystem)."""

import os
import re
import tempfile
import threading

import jax
import jax.numpy as jnp
import numpy as np


class InProcessWeights:
    """Publishes a copy: the learner donates its own buffers to the next update while actors still use them."""

    def __init__(self, version: int, params):
        self._lock = threading.Lock()
        self._latest = (version, jax.tree.map(jnp.copy, params))

    def publish(self, version: int, params):
        copy = jax.tree.map(jnp.copy, params)
        with self._lock:
            self._latest = (version, copy)

    def latest(self):
        with self._lock:
            return self._latest


class DirectoryWeights:
    """`version-N.npz` files written atomically (temp file + rename); readers take the highest N."""

    _NAME = re.compile(r"version-(\d+)\.npz$")

    def __init__(self, directory: str, keep: int = 2):
        self.directory, self.keep = directory, keep
        os.makedirs(directory, exist_ok=True)

    def publish(self, version: int, params):
        flat = {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(leaf)
                for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}
        fd, temp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **flat)
        os.replace(temp, os.path.join(self.directory, f"version-{version}.npz"))
        for old in self._versions()[:-self.keep]:
            os.remove(os.path.join(self.directory, f"version-{old}.npz"))

    def _versions(self) -> list[int]:
        return sorted(int(m.group(1)) for m in map(self._NAME.match, os.listdir(self.directory)) if m)

    def latest(self, like=None):
        """(version, params) of the newest file; params take the structure of `like` (a params tree)."""
        versions = self._versions()
        if not versions:
            return None
        with np.load(os.path.join(self.directory, f"version-{versions[-1]}.npz")) as data:
            flat = {k: data[k] for k in data.files}
        if like is None:
            return versions[-1], flat
        paths = [("/".join(str(getattr(k, "key", k)) for k in path))
                 for path, _ in jax.tree_util.tree_flatten_with_path(like)[0]]
        return versions[-1], jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(like), [flat[p] for p in paths])
