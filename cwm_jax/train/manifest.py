"""The run manifest: what ran, where, with what, from which data position. Written to WORKDIR/manifest.json
when a run starts or resumes (what `cwm repro compare` reads) and saved with every checkpoint, there with the
data position and malformed-record counts of the save."""

import importlib.metadata
import json
import os
import subprocess

import jax

from cwm_data.pipeline.input_pipeline import malformed_counts

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain", "numpy", "sentencepiece")
# Environment variables that change numerics or device selection.
ENVIRONMENT = ("XLA_FLAGS", "LIBTPU_INIT_ARGS", "JAX_PLATFORMS", "NVIDIA_TF32_OVERRIDE", "CUDA_VISIBLE_DEVICES")
JAX_FLAGS = ("jax_default_matmul_precision", "jax_threefry_partitionable", "jax_enable_x64", "jax_default_prng_impl")


def git_commit() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "-C", here, "status", "--porcelain"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def run_manifest(config, mesh, start_step: int = 0, data_iterator=None) -> dict:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "config": config.to_dict(),
        "versions": versions,
        "git_commit": git_commit(),
        "devices": {
            "kind": jax.devices()[0].device_kind,
            "count": jax.device_count(),
            "processes": jax.process_count(),
            "platform": jax.default_backend(),
        },
        "mesh": dict(mesh.shape),
        "environment": {k: os.environ.get(k) for k in ENVIRONMENT},
        "jax_flags": {k: str(getattr(jax.config, k)) for k in JAX_FLAGS},
        "seed": config.seed,
        "start_step": start_step,
        "data_state": _data_state(data_iterator),
    }


def _data_state(iterator):
    """The data iterator's position as JSON (Grain's own iterators give a dict, ours bytes of JSON)."""
    if iterator is None:
        return None
    state = iterator.get_state()
    return json.loads(state) if isinstance(state, bytes) else state


def checkpoint_manifest(manifest: dict, data_iterator) -> dict:
    """The run manifest as saved with a checkpoint: the run's start fields, and the data iterator's state and
    malformed records skipped ("source: reason" -> count) as of this save."""
    state = _data_state(data_iterator)
    return {**manifest, "data_state": state, "malformed_records": malformed_counts(state)}


def write_manifest(workdir: str, manifest: dict):
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, default=str)
