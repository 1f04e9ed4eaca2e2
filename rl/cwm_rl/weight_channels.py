"""How new policy weights reach the actors: in-process (the sampler's own arrays), or as versions on disk for
actors in other processes or on other hosts sharing a filesystem.

On disk each version is a params-only Orbax checkpoint, `version-N/`, that every learner process writes in
parallel (only the shards its devices hold), in the sampler's dtype. Orbax writes into a temporary folder and
renames it when every process is done; the `COMMITTED` file written after that is what makes a version
readable, so a learner killed while writing leaves nothing an actor reads. An actor restores a version
straight into its own mesh's shardings."""

import json
import os
import re
import shutil
import threading
import time

import jax
import orbax.checkpoint as ocp

from cwm_common.errors import CwmError

COMMITTED = "COMMITTED"
_VERSION = re.compile(r"version-(\d+)$")


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


class WeightVersions:
    def __init__(self, directory: str, keep: int = 2):
        self.directory, self.keep = os.path.abspath(directory), keep
        os.makedirs(self.directory, exist_ok=True)

    def _path(self, version: int) -> str:
        return os.path.join(self.directory, f"version-{version}")

    def publish(self, version: int, params):
        """Called by every learner process with the same (sharded) params; returns once the version is
        readable. Versions older than the newest `keep` are removed."""
        path = self._path(version)
        checkpointer = ocp.StandardCheckpointer()
        checkpointer.save(path, params, force=True)
        checkpointer.wait_until_finished()  # every process's shards are on disk and the folder is renamed
        checkpointer.close()
        if jax.process_index() == 0:
            leaves = jax.tree.leaves(params)
            marker = {"version": version, "leaves": len(leaves), "dtype": str(leaves[0].dtype)}
            temp = os.path.join(path, COMMITTED + ".tmp")
            with open(temp, "w") as f:
                json.dump(marker, f)
            os.replace(temp, os.path.join(path, COMMITTED))
            for old in self.versions()[: -self.keep]:
                shutil.rmtree(self._path(old), ignore_errors=True)

    def versions(self) -> list[int]:
        """Committed versions, oldest first."""
        found = (m for m in map(_VERSION.match, os.listdir(self.directory)) if m)
        return sorted(
            int(m.group(1)) for m in found if os.path.exists(os.path.join(self.directory, m.group(0), COMMITTED))
        )

    def latest(self, target):
        """(version, params) of the newest committed version, restored into `target`'s shapes, dtypes and
        shardings (a tree of jax.ShapeDtypeStruct); None before the first version."""
        while True:
            versions = self.versions()
            if not versions:
                return None
            version = versions[-1]
            try:
                return version, self._restore(version, target)
            except Exception:
                if version in self.versions():
                    raise
                # removed by the learner (newer versions exist) while we read it: take the newest again

    def _restore(self, version: int, target):
        path = self._path(version)
        with open(os.path.join(path, COMMITTED)) as f:
            marker = json.load(f)
        leaves = len(jax.tree.leaves(target))
        if marker["version"] != version or marker["leaves"] != leaves:
            raise CwmError(
                f"{path}: holds version {marker['version']} with {marker['leaves']} arrays; expected version "
                f"{version} with {leaves} (is this exchange folder shared by another run?)"
            )
        return ocp.StandardCheckpointer().restore(path, target)

    def wait_for(self, version: int, target, stopping, poll_s: float = 0.05):
        """The newest (version, params) once a version >= `version` is committed; None if stopping() first."""
        while not stopping():
            versions = self.versions()
            if versions and versions[-1] >= version:
                return self.latest(target)
            time.sleep(poll_s)
        return None
