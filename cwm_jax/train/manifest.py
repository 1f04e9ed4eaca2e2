"""The run manifest saved with every checkpoint: what ran, where, with what (for reproducing a run)."""

import importlib.metadata
import os
import subprocess

import jax

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain", "numpy", "sentencepiece")


def git_commit() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain"], capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def run_manifest(config, mesh) -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {"config": config.to_dict(), "versions": versions, "git_commit": git_commit(),
            "devices": {"kind": jax.devices()[0].device_kind, "count": jax.device_count(),
                        "processes": jax.process_count(), "platform": jax.default_backend()},
            "mesh": dict(mesh.shape), "xla_flags": os.environ.get("XLA_FLAGS", ""), "seed": config.seed}
