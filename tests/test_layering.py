"""Imports point one way (DESIGN.md): checked on the source, so a wrong import fails here first."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = {
    "cwm_common": ROOT / "cwm_common",
    "cwm_envs": ROOT / "envs" / "cwm_envs",
    "cwm_data": ROOT / "data" / "cwm_data",
    "cwm_jax": ROOT / "cwm_jax",
    "cwm_rl": ROOT / "rl" / "cwm_rl",
    "cwm_cli": ROOT / "cwm_cli",
}
# What each package may import among ours and the accelerator stack.
ALLOWED = {
    "cwm_common": set(),
    "cwm_envs": {"cwm_common"},
    "cwm_data": {"cwm_common", "cwm_envs"},
    "cwm_jax": {"cwm_common", "cwm_data", "cwm_envs", "configs", "jax", "flax", "optax", "orbax"},
    "cwm_rl": {"cwm_common", "cwm_envs", "cwm_data", "cwm_jax", "configs", "jax", "flax", "optax", "orbax"},
    "cwm_cli": {"cwm_common", "cwm_envs", "cwm_data", "cwm_jax", "cwm_rl", "configs", "jax"},
}
GUARDED = set(PACKAGES) | {"configs", "jax", "flax", "optax", "orbax", "torch", "transformers"}


def _imports(path: pathlib.Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", list(PACKAGES))
def test_imports_point_one_way(package):
    for path in PACKAGES[package].rglob("*.py"):
        bad = (_imports(path) & GUARDED) - ALLOWED[package] - {package}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
