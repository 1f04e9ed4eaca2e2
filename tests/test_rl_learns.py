"""The README's story on a short run: a tiny CWM trained on the shipped traces learns, under GRPO with
sandboxed rewards, to answer better; the RL run resumes from its checkpoint; and the asynchronous loop with
max_staleness 0 is exactly the synchronous one."""

import json
import os
import shlex
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest

from cwm_common.experiment_config import load_config
from cwm_common.repo_paths import CONFIGS
from cwm_jax.train.repro_compare import compare_runs
from cwm_rl.loop import run_rl
from cwm_rl.story import run_story

pytestmark = [pytest.mark.slow, pytest.mark.bwrap]


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("story")
    lines: list[str] = []
    result = run_story(str(workdir), train_steps=150, rl_steps=20, rl_mode="sync", log=lines.append)
    return workdir, result, lines


def _rl_config(policy, *overrides):
    return load_config(f"{CONFIGS}/rl_tiny.py", [f"--config.policy.model={policy}", *overrides])


def _metrics(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_story_runs_and_reward_rises(story):
    workdir, result, lines = story
    first_loss, last_loss = result["loss"]
    assert last_loss < first_loss - 1.0
    rewards = result["rewards"]
    # Starting near -1 (almost every answer wrong), the mean reward of the last 10 steps is clearly higher.
    early, late = sum(rewards[:5]) / 5, sum(rewards[-10:]) / 10
    assert rewards[0] < -0.7 and late > early + 0.3, rewards
    assert any(line.startswith("== 3/3") for line in lines) and (workdir / "rl" / "reward_curve.png").exists()
    assert {
        "step",
        "reward_mean",
        "reward_mean/echo_bit",
        "reward_std/echo_bit",
        "pass_rate",
        "gen_tokens_per_s",
        "episodes_per_s",
        "learner_tokens_per_s",
        "learner_wait_fraction",
        "staleness_mean",
        "clip_fraction",
    } <= set(_metrics(workdir / "rl")[0])


def test_rl_resumes_from_its_last_checkpoint(story):
    workdir, result, _ = story
    # Running again with more steps resumes from the last checkpoint (step 20) and appends steps 21-22.
    logs: list[str] = []
    run_rl(
        _rl_config(workdir / "tiny", "--config.steps=22", "--config.rl.mode=sync"), str(workdir / "rl"), log=logs.append
    )
    assert "resumed RL from step 20" in logs
    assert json.loads((workdir / "rl" / "manifest.json").read_text())["start_step"] == 20
    assert [r["step"] for r in _metrics(workdir / "rl")] == list(range(1, 23))


def _run_with_external_actors(cfg, workdir, log):
    """The learner launches no actors; this test starts the commands it prints, as other hosts would."""
    lines: list[str] = []
    out: dict = {}
    errors: list[BaseException] = []

    def learn():
        try:
            out.update(run_rl(cfg, workdir, log=lines.append))
        except BaseException as e:
            errors.append(e)

    learner = threading.Thread(target=learn)
    learner.start()
    commands: list[str] = []
    while len(commands) < 2 and learner.is_alive():
        commands = ["cwm " + line.split(": cwm ", 1)[1] for line in list(lines) if line.startswith("start actor ")]
        time.sleep(0.05)
    actors = [subprocess.Popen([sys.executable, "-m", "cwm_cli.main", *shlex.split(c)[1:]]) for c in commands]
    learner.join()
    assert not errors, errors
    assert [a.wait(timeout=120) for a in actors] == [0, 0]  # they stop when the learner says it has
    return out


def test_async_with_staleness_0_is_the_sync_run(story, tmp_path, monkeypatch):
    """Actor thread and actor processes (weights as Orbax versions and rollouts crossing process boundaries;
    launched by the learner, or by someone else from the commands it prints) alike; actor processes on
    another mesh (2 devices, tensor 2, where the learner's sampler has tensor 8) only within rounding."""
    policy = story[0] / "tiny"
    runs = {}
    external = ["--config.rl.max_staleness=0", "--config.rl.actor_processes=2", "--config.rl.launch_actors=False"]
    for name, overrides in (
        ("sync", ["--config.rl.mode=sync"]),
        ("thread", ["--config.rl.max_staleness=0"]),
        ("processes", ["--config.rl.max_staleness=0", "--config.rl.actor_processes=2"]),
        ("external processes", external),
        ("thread, staleness 1", ["--config.rl.max_staleness=1"]),
    ):
        run = _run_with_external_actors if name == "external processes" else run_rl
        out = run(_rl_config(policy, "--config.steps=3", *overrides), str(tmp_path / name), log=lambda m: None)
        runs[name] = (_metrics(tmp_path / name), jax.tree.leaves(out["state"]["params"]))
    keys = ("reward_mean", "loss", "clip_fraction", "staleness_mean")
    sync, sync_params = runs["sync"]
    for name in ("thread", "processes", "external processes"):
        metrics, params = runs[name]
        assert [[r[k] for k in keys] for r in metrics] == [[r[k] for k in keys] for r in sync], name
        for a, b in zip(sync_params, params, strict=True):
            np.testing.assert_array_equal(a, b)
    with monkeypatch.context() as env:
        env.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")  # the actor processes' devices
        overrides = ["--config.rl.max_staleness=0", "--config.rl.actor_processes=2"]
        run_rl(_rl_config(policy, "--config.steps=3", *overrides), str(tmp_path / "other mesh"), log=lambda m: None)
    other = _metrics(tmp_path / "other mesh")
    assert [r["reward_mean"] for r in other] == [r["reward_mean"] for r in sync]
    np.testing.assert_allclose([r["loss"] for r in other], [r["loss"] for r in sync], rtol=1e-4, atol=1e-6)
    actor_log = (tmp_path / "other mesh" / "exchange" / "actor-0.log").read_text()
    assert "sampler mesh {'data': 1, 'fsdp': 1, 'tensor': 2, 'sequence': 1}" in actor_log
    same = compare_runs(str(tmp_path / "sync"), str(tmp_path / "processes"))
    assert same.bitwise and same.first_divergent is None and "config.rl.actor_processes: 0 -> 2" in same.manifest_diff
    # With one version of slack the actor runs ahead (batch 1 starts from version 0 while step 1 trains),
    # never further.
    slack = runs["thread, staleness 1"][0]
    assert slack[1]["staleness_mean"] == 1.0 and max(r["staleness_max"] for r in slack) == 1


def _rl_subprocess(policy, workdir, devices: int, *overrides):
    """`cwm rl` in a fresh process with `devices` host devices."""
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    command = ["rl", "--config", f"{CONFIGS}/rl_tiny.py", "--workdir", str(workdir), f"--config.policy.model={policy}"]
    done = subprocess.run([sys.executable, "-m", "cwm_cli.main", *command, *overrides], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-3000:]


def test_rl_on_a_mesh_equals_one_device(story, tmp_path):
    policy = story[0] / "tiny"
    # The sampler in float32: its bfloat16 weights make every step off-policy, which turns the sampler's
    # rounding on another mesh into loss differences above 1e-5 (the two-process test keeps bfloat16).
    common = [
        "--config.rl.mode=sync",
        "--config.steps=3",
        "--config.checkpoint_every=3",
        "--config.rl.sampler_dtype=float32",
    ]
    mesh = [
        "--config.mesh.data=2",
        "--config.mesh.fsdp=2",
        "--config.mesh.tensor=2",
        "--config.param_rules.kv_heads=None",
    ]
    out = run_rl(_rl_config(policy, *common, *mesh), str(tmp_path / "mesh"), log=lambda m: None)
    _rl_subprocess(policy, tmp_path / "one", 1, *common)
    sharded, single = _metrics(tmp_path / "mesh"), _metrics(tmp_path / "one")
    assert [r["reward_mean"] for r in sharded] == [r["reward_mean"] for r in single]
    # On-policy steps have a loss of exactly 0 in exact arithmetic (ratio 1, mean-zero advantages): rounding
    # noise of 1e-8 is compared absolutely.
    for key in ("loss", "grad_norm"):
        got, want = [r[key] for r in sharded], [r[key] for r in single]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7, err_msg=key)
    # The learner's state is split over the mesh: params by the rules, Adam's moments like their params.
    spec = jax.sharding.PartitionSpec
    params, moments = out["state"]["params"], out["state"]["opt_state"][1][0].mu
    assert params["layers"]["mlp"]["up"].sharding.spec == spec(None, "fsdp", "tensor")
    assert moments["layers"]["mlp"]["up"].sharding.spec == spec(None, "fsdp", "tensor")
    assert len(params["embed"].addressable_shards) == 8 and params["embed"].addressable_shards[0].data.shape[1] == 96
    manifest = json.loads((tmp_path / "mesh" / "manifest.json").read_text())
    assert manifest["mesh"] == {"data": 2, "fsdp": 2, "tensor": 2, "sequence": 1}
    saved = json.loads((tmp_path / "mesh" / "checkpoints" / "3" / "state" / "_sharding").read_text())
    assert any("fsdp" in json.dumps(entry) and "tensor" in json.dumps(entry) for entry in saved.values())


def test_an_rl_run_resumes_on_another_mesh(story, tmp_path):
    policy = story[0] / "tiny"
    common = [
        "--config.rl.mode=sync",
        "--config.steps=4",
        "--config.checkpoint_every=2",
        "--config.rl.sampler_dtype=float32",
    ]
    fsdp = ["--config.mesh.data=1", "--config.mesh.fsdp=4"]
    _rl_subprocess(policy, tmp_path / "straight", 4, *common, *fsdp)
    _rl_subprocess(policy, tmp_path / "moved", 4, *common, *fsdp, "--config.steps=2")
    tensor = ["--config.mesh.data=2", "--config.mesh.tensor=2", "--config.param_rules.kv_heads=None"]
    _rl_subprocess(policy, tmp_path / "moved", 4, *common, *tensor)
    straight, moved = _metrics(tmp_path / "straight"), _metrics(tmp_path / "moved")
    assert [r["step"] for r in moved] == [1, 2, 3, 4]
    assert [r["reward_mean"] for r in moved] == [r["reward_mean"] for r in straight]
    np.testing.assert_allclose([r["loss"] for r in moved], [r["loss"] for r in straight], rtol=1e-5, atol=1e-7)
    manifest = json.loads((tmp_path / "moved" / "manifest.json").read_text())
    assert manifest["mesh"] == {"data": 2, "fsdp": 1, "tensor": 2, "sequence": 1} and manifest["start_step"] == 2


def test_two_processes_each_grade_their_own_rows_and_equal_one_process(story, tmp_path):
    """launch/local.py: 2 processes x 2 devices against 1 process x 4 devices, the same learner mesh."""
    policy = story[0] / "tiny"
    command = [
        sys.executable,
        "-m",
        "cwm_cli.main",
        "rl",
        "--config",
        f"{CONFIGS}/rl_tiny.py",
        f"--config.policy.model={policy}",
    ]
    common = ["--config.rl.mode=sync", "--config.steps=3", "--config.mesh.data=2", "--config.mesh.fsdp=2"]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    two = subprocess.run(
        [sys.executable, "launch/local.py", "--num-processes", "2", "--cpu-devices", "2", "--"]
        + [*command, "--workdir", str(tmp_path / "two"), *common],
        env=env,
        capture_output=True,
        text=True,
    )
    assert two.returncode == 0, two.stdout[-3000:]
    assert "[p0] process 0: generates and grades rows 0-31 of 64" in two.stdout
    assert "[p1] process 1: generates and grades rows 32-63 of 64" in two.stdout
    _rl_subprocess(policy, tmp_path / "one", 4, *common)
    two_processes, one = _metrics(tmp_path / "two"), _metrics(tmp_path / "one")
    assert [r["reward_mean"] for r in two_processes] == [r["reward_mean"] for r in one]
    assert [r["infra_failed_samples"] for r in two_processes] == [0, 0, 0]
    # Each process decodes half the rows: the sampler's log-probs round differently (1e-7), so the
    # near-zero on-policy losses are compared absolutely.
    np.testing.assert_allclose([r["loss"] for r in two_processes], [r["loss"] for r in one], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose([r["grad_norm"] for r in two_processes], [r["grad_norm"] for r in one], rtol=1e-5)
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["devices"]["processes"] == 2 and manifest["mesh"] == {
        "data": 2,
        "fsdp": 2,
        "tensor": 1,
        "sequence": 1,
    }
