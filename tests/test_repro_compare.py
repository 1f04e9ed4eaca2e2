"""Reproducibility: same-mesh reruns are bitwise identical on CPU, another mesh agrees within fp32 tolerance,
`cwm repro compare` names the first divergent step of runs with a planted perturbation (and why), and a run
trained on 8 devices loads for inference on one."""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from cwm_cli.main import main
from cwm_common.experiment_config import load_config
from cwm_jax.train.loop import train

MESH_8 = ["--config.mesh.data=8"]
MESH_2x2x2 = ["--config.mesh.data=2", "--config.mesh.fsdp=2", "--config.mesh.tensor=2"]


def _train(workdir, *overrides):
    train(
        load_config(
            "configs/tiny.py",
            [
                "--config.data.kind=synthetic",
                "--config.model.n_kv_heads=2",
                "--config.log_every=100",
                "--config.steps=6",
                "--config.checkpoint_every=3",
                *overrides,
            ],
        ),
        str(workdir),
        log=lambda m: None,
    )
    return str(workdir)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("repro")
    out = {
        "a": _train(root / "a", *MESH_8),
        "rerun": _train(root / "rerun", *MESH_8),
        "mesh": _train(root / "mesh", *MESH_2x2x2),
        "seed": _train(root / "seed", *MESH_8, "--config.seed=1"),
    }
    # The planted perturbation: run a, resumed from its step-3 checkpoint with a different learning rate.
    shutil.copytree(root / "a", root / "lr")
    shutil.rmtree(root / "lr" / "checkpoints" / "6")
    out["lr"] = _train(root / "lr", *MESH_8, "--config.optimizer.peak_lr=0.006")
    return out


def _compare(capsys, a, b, *flags):
    code = main(["repro", "compare", a, b, *flags])
    return code, capsys.readouterr().out


@pytest.mark.slow
def test_same_mesh_reruns_are_bitwise_identical(runs, capsys):
    code, out = _compare(capsys, runs["a"], runs["rerun"])
    assert code == 0 and "IDENTICAL (bitwise)" in out and "compared 6 steps" in out
    with open(f"{runs['a']}/manifest.json") as f:
        manifest = json.load(f)
    assert manifest["mesh"] == {"data": 8, "fsdp": 1, "tensor": 1, "sequence": 1} and manifest["seed"] == 0
    assert manifest["data_state"] == {"step": 0} and "XLA_FLAGS" in manifest["environment"]


@pytest.mark.slow
def test_another_mesh_agrees_within_fp32_tolerance(runs, capsys):
    code, out = _compare(capsys, runs["a"], runs["mesh"], "--rtol", "1e-5")
    assert code == 0 and "mesh.fsdp: 1 -> 2" in out, out


@pytest.mark.slow
def test_a_planted_perturbation_is_found_at_its_step(runs, capsys):
    # Step 4 is the first update at the new rate: the logged lr moves there; the loss, taken before a step's
    # update, first moves at step 5.
    code, out = _compare(capsys, runs["a"], runs["lr"])
    assert code == 1 and "DIVERGED at step 4: lr differs" in out, out
    code, out = _compare(capsys, runs["a"], runs["lr"], "--metric", "loss")
    assert code == 1 and "DIVERGED at step 5: loss differs" in out, out
    assert "config.optimizer.peak_lr: 0.003 -> 0.006" in out and "start_step: 0 -> 3" in out
    code, out = _compare(capsys, runs["a"], runs["seed"], "--rtol", "0.5")
    assert code == 1 and "DIVERGED at step 1: the training batches differ" in out, out


def test_unreadable_runs_are_named(tmp_path, capsys):
    assert main(["repro", "compare", str(tmp_path), str(tmp_path)]) == 2
    assert f"{tmp_path}/metrics.jsonl: no metrics" in capsys.readouterr().err
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\nnot json\n')
    assert main(["repro", "compare", str(tmp_path), str(tmp_path)]) == 2
    assert f"{tmp_path}/metrics.jsonl:2: not a metrics record" in capsys.readouterr().err


LOAD_ON_ONE_DEVICE = """
import sys
import jax, numpy as np
from flax import nnx
from cwm_jax.inference_io import load_model
params = nnx.state(load_model(sys.argv[1]), nnx.Param).to_pure_dict()
print(jax.device_count(), sum(float(np.abs(np.asarray(a, np.float64)).sum()) for a in jax.tree.leaves(params)))
"""


@pytest.mark.slow
def test_a_run_trained_on_8_devices_loads_its_params_on_one(runs):
    """Inference elsewhere (one device) reads only the params of an 8-device run's checkpoint, unchanged."""
    saved = ocp.StandardCheckpointer().restore(os.path.join(runs["a"], "checkpoints", "6", "state"))["params"]
    expected = sum(float(np.abs(np.asarray(a, np.float64)).sum()) for a in jax.tree.leaves(saved))
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    out = subprocess.run(
        [sys.executable, "-c", LOAD_ON_ONE_DEVICE, runs["a"]], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == "1" and float(out[1]) == expected
