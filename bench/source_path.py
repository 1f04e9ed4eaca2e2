"""Imported first by benches that must run from a checkout without the package installed (a machine that
already has its own CUDA jax): puts the project's package roots (pyproject.toml's packages.find `where`) on
sys.path."""

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for root in ("tasks", "rl", "envs", "data", ""):
    sys.path.insert(0, os.path.join(REPO, root))
