"""Orbax checkpoints of the whole run: train state, this process's data-iterator position (when the run reads
through a stateful iterator), and the run manifest.

Saves are asynchronous (training goes on while arrays are written); every N steps, at the last step and on
SIGTERM; the newest K are kept. A step is only visible once complete, so a run killed mid-save resumes
from the previous one.
"""

import os

import grain
import jax
import orbax.checkpoint as ocp

from cwm_common.errors import CwmError
from cwm_data.pipeline.elastic_batches import state_files


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

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state, data_iterator, manifest: dict):
        items = dict(state=ocp.args.StandardSave(state), manifest=ocp.args.JsonSave(manifest))
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
        self.manager.save(step, args=ocp.args.Composite(**items))

    def restore(self, step: int, abstract_state, data_iterator):
        """The state placed by the target's shardings (so a different mesh reshards), and the iterator
        (if any) moved to where it was. Iterators that can (`set_state_from_files`: elastic and synthetic
        batches) read every process's state file, so the process count may have changed; Grain's own read
        their process's."""
        items = dict(state=ocp.args.StandardRestore(abstract_state))
        elastic = hasattr(data_iterator, "set_state_from_files")
        data_dir = os.path.join(str(self.manager.directory), str(step), "data")
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
        self.manager.wait_until_finished()

    def close(self):
        self.manager.close()


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
