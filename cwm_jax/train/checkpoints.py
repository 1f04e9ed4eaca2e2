"""Orbax checkpoints of the whole run: train state, this process's data-iterator position (when the run reads
through a stateful iterator), and the run manifest.

Saves are asynchronous (training goes on while arrays are written); every N steps, at the last step and on
SIGTERM; the newest K are kept. A step is only visible once complete, so a run killed mid-save resumes
from the previous one; a complete step whose metadata no longer reads (a disk error, a hand edit) is moved
aside and the one before it resumed. A save that runs out of disk leaves no partial step behind.
"""

import contextlib
import errno
import glob
import json
import logging
import os
import shutil
import time

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from cwm_common.errors import CwmError
from cwm_data.pipeline.elastic_batches import state_files

# A step's JSON files (Orbax's and Grain's metadata, the data positions, the manifest), relative to its folder.
JSON_FILES = ("_CHECKPOINT_METADATA", "state/_METADATA", "state/_sharding", "manifest/metadata", "data/*.json")


class Checkpoints:
    def __init__(self, workdir: str, keep: int):
        self.manager = ocp.CheckpointManager(
            os.path.join(os.path.abspath(workdir), "checkpoints"),
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=True),
            item_handlers={
                "state": ocp.StandardCheckpointHandler(),
                "data": grain.checkpoint.CheckpointHandler(),
                "manifest": ocp.JsonCheckpointHandler(),
            },
        )
        self._saving = (0, 0)  # (step, bytes of its arrays) of the latest save
        logging.getLogger("absl").addFilter(_QUIET_DISK_FULL)  # once: the same filter object

    def latest_intact_step(self, log) -> int | None:
        """The newest step whose files all read (None: no checkpoint). Newer unreadable ones are moved to
        WORKDIR/unreadable_checkpoints with a one-line warning each, so later saves of those steps are not
        skipped as already done; with no intact step the unreadable file is named in a CwmError."""
        step, skipped = intact_step(str(self.manager.directory), self.manager.all_steps())
        if skipped and jax.process_count() > 1:  # every process has scanned before process 0 moves anything
            multihost_utils.sync_global_devices("checkpoint scan")
        for newer, why in skipped:
            log(f"warning: skipping checkpoint step {newer}: {why}; resuming from step {step}")
            self._move_aside(newer)
        return step

    def _step_dir(self, step: int) -> str:
        return os.path.join(str(self.manager.directory), str(step))

    def _move_aside(self, step: int):
        if jax.process_index() == 0:
            aside = os.path.join(os.path.dirname(str(self.manager.directory)), "unreadable_checkpoints")
            os.makedirs(aside, exist_ok=True)
            os.rename(self._step_dir(step), os.path.join(aside, f"{step}-{time.strftime('%Y%m%d-%H%M%S')}"))
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"checkpoint {step} moved aside")
        self.manager.reload()

    def save(self, step: int, state, data_iterator, manifest: dict):
        self.wait()  # a failure of the previous (asynchronous) save is reported as that step's
        items = dict(state=ocp.args.StandardSave(state), manifest=ocp.args.JsonSave(manifest))
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
        self._saving = (step, _bytes_written_here(state))
        self._check_space()
        with self._disk_full_named():
            self.manager.save(step, args=ocp.args.Composite(**items))

    def _check_space(self):
        """Refuses a save the local disk cannot hold before it starts: a save that fails midway leaves
        Orbax's writes in flight to print a traceback each."""
        directory = str(self.manager.directory)
        if not os.path.isdir(directory):  # a remote path (gs://): its store reports running out itself
            return
        step, need = self._saving
        free = shutil.disk_usage(directory).free
        fits = need <= free
        if jax.process_count() > 1:  # all processes refuse together: one alone would leave the others waiting
            fits = bool(multihost_utils.process_allgather(np.int32(fits)).all())
        if not fits:
            raise CwmError(_no_space(directory, step, need, free))

    def restore(self, step: int, abstract_state, data_iterator):
        """The state placed by the target's shardings (so a different mesh reshards), and the iterator
        (if any) moved to where it was. Iterators that can (`set_state_from_files`: elastic and synthetic
        batches) read every process's state file, so the process count may have changed; Grain's own read
        their process's."""
        items = dict(state=ocp.args.StandardRestore(abstract_state))
        elastic = hasattr(data_iterator, "set_state_from_files")
        data_dir = os.path.join(self._step_dir(step), "data")
        if data_iterator is not None and not elastic:
            _check_process_count(data_dir)
            items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
        state = self.manager.restore(step, args=ocp.args.Composite(**items))["state"]
        if elastic:
            data_iterator.set_state_from_files(data_dir)
        return state

    def manifest(self, step: int) -> dict:
        return self.manager.restore(step, args=ocp.args.Composite(manifest=ocp.args.JsonRestore()))["manifest"]

    def wait(self):
        with self._disk_full_named():
            self.manager.wait_until_finished()

    @contextlib.contextmanager
    def _disk_full_named(self):
        """A save that ran out of space: its partial step folders are removed (a rerun starts clean) and a
        CwmError says how much the checkpoint needs."""
        try:
            yield
        except Exception as e:
            if not _disk_full(e):
                raise
            directory = str(self.manager.directory)
            for partial in glob.glob(os.path.join(directory, "*.orbax-checkpoint-tmp*")):
                shutil.rmtree(partial, ignore_errors=True)
            step, need = self._saving
            raise CwmError(_no_space(directory, step, need, shutil.disk_usage(directory).free)) from None

    def close(self):
        self.manager.close()


def intact_step(directory: str, steps) -> tuple[int | None, list[tuple[int, str]]]:
    """The newest of `steps` under `directory` whose JSON files all read, and the newer ones that do not
    (step, 'PATH: why'); a CwmError naming the file when there are steps and none is intact."""
    skipped: list[tuple[int, str]] = []
    for step in sorted(steps, reverse=True):
        problem = _unreadable_file(os.path.join(directory, str(step)))
        if problem is None:
            return step, skipped
        skipped.append((step, problem))
    if skipped:
        raise CwmError(f"{skipped[0][1]}; no intact checkpoint to resume from")
    return None, []


def _unreadable_file(step_dir: str) -> str | None:
    """'PATH: why' for the first of the step's JSON files that is missing (a name without wildcards) or does
    not parse, else None."""
    for pattern in JSON_FILES:
        paths = sorted(glob.glob(os.path.join(step_dir, pattern)))
        if not paths and "*" not in pattern:
            return f"{os.path.join(step_dir, pattern)}: missing"
        for path in paths:
            try:
                with open(path) as f:
                    json.load(f)
            except (OSError, ValueError) as e:  # ValueError: invalid JSON or UTF-8
                return f"{path}: unreadable ({e})"
    return None


def _bytes_written_here(state) -> int:
    """Bytes of the arrays this process writes: one copy of each shard it holds."""
    return sum(
        shard.data.nbytes
        for leaf in jax.tree.leaves(state)
        for shard in getattr(leaf, "addressable_shards", ())
        if shard.replica_id == 0
    )


def _no_space(directory: str, step: int, need: int, free: int) -> str:
    return (
        f"{directory}: no space left on device for step {step}: its arrays take {need / 2**20:.1f} MiB "
        f"(less if compressed), {free / 2**20:.1f} MiB are free"
    )


def _disk_full(error: object) -> bool:
    # Tensorstore reports the OS error as a ValueError whose text carries its code.
    return getattr(error, "errno", None) == errno.ENOSPC or f"[os_error_code='{errno.ENOSPC}']" in str(error)


class _QuietDiskFull(logging.Filter):
    """Orbax's save threads log a full disk with tracebacks, hundreds of lines; the CwmError says it in one."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _disk_full(record.exc_info[1] if record.exc_info else record.getMessage())


_QUIET_DISK_FULL = _QuietDiskFull()


def _check_process_count(data_dir: str):
    saved = state_files(data_dir)
    if f"process_{jax.process_index()}-of-{jax.process_count()}.json" not in {p.name for p in saved}:
        raise CwmError(
            f"{data_dir}: the data position was saved by {saved[0].stem.rsplit('-of-', 1)[1]} processes "
            f"and this run has {jax.process_count()}; runs started with data.virtual_shards > 0 can "
            f"change the process count"
        )


def restore_params(workdir: str, step: int, abstract_params):
    """Only the params of a checkpoint's train state (inference, an RL policy): optimizer moments, two more
    copies of the params, are never read. Leaves come back with the abstract tree's dtypes and shardings."""
    path = os.path.join(os.path.abspath(workdir), "checkpoints", str(step), "state")
    restore_args = ocp.checkpoint_utils.construct_restore_args(abstract_params)
    restored = ocp.PyTreeCheckpointer().restore(
        path,
        args=ocp.args.PyTreeRestore(
            item={"params": abstract_params}, restore_args={"params": restore_args}, partial_restore=True
        ),
    )
    return restored["params"]
