"""The trainer: recipe pieces, config errors, resharded restore, SFT masks, and metrics files."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cwm_cli.main import main
from cwm_common.errors import CwmError
from cwm_common.experiment_config import load_config
from cwm_jax.presets import from_preset
from cwm_jax.sharding import ShardingRules, make_mesh
from cwm_jax.train.flops import flops_per_token
from cwm_jax.train.loop import train
from cwm_jax.train.optimizer import decay_mask, make_optimizer
from cwm_jax.train.schedule import learning_rate_schedule
from cwm_jax.train.state import abstract_model, create_state, state_shardings
from cwm_jax.train.step import make_train_step, next_token_objective

TINY = "configs/tiny.py"


def _synthetic(tmp_path, *overrides):
    return load_config(
        TINY, ["--config.data.kind=synthetic", "--config.model.n_kv_heads=2", "--config.log_every=100", *overrides]
    )


def test_cwm_schedule_warms_up_then_decays_100x():
    cosine = learning_rate_schedule("cosine", 8e-4, 2000, 10000)
    assert float(cosine(0)) == 0.0 and abs(float(cosine(2000)) - 8e-4) < 1e-9
    assert abs(float(cosine(10000)) - 8e-6) < 1e-9 and float(cosine(6000)) < 8e-4
    wsd = learning_rate_schedule("wsd", 1.0, 10, 110, wsd_decay_fraction=0.2)
    assert float(wsd(50)) == 1.0 and float(wsd(89)) == 1.0 and abs(float(wsd(110)) - 0.01) < 1e-6
    constant = learning_rate_schedule("constant", 1e-5, 100, 1000)
    assert float(constant(500)) == pytest.approx(1e-5)


def test_weight_decay_skips_norm_scales():
    params = {"embed": 1, "final_norm": {"scale": 1}, "layers": {"attn_norm": {"scale": 1}, "mlp": {"up": 1}}}
    assert decay_mask(params) == {
        "embed": True,
        "final_norm": {"scale": False},
        "layers": {"attn_norm": {"scale": False}, "mlp": {"up": True}},
    }


def test_compute_per_token_is_cwms_count():
    cfg = from_preset("cwm-32b")
    # 6 N_non-embedding + 6 d L S, with S capped at the 8192 window on the 48 local layers.
    expected = 6 * cfg.non_embedding_params() + 6 * 6144 * (16 * 32768 + 48 * 8192)
    assert flops_per_token(cfg, 32768) == expected
    assert flops_per_token(cfg, 4096) == 6 * cfg.non_embedding_params() + 6 * 6144 * 64 * 4096


def test_gradient_accumulation_does_not_change_the_update(tmp_path):
    cfg = _synthetic(tmp_path)
    model_cfg = from_preset("cwm-tiny", n_kv_heads=2)
    optimizer, schedule = make_optimizer(cfg.optimizer, 10)
    mesh = make_mesh({"data": 1}, devices=jax.devices()[:1])
    with jax.set_mesh(mesh):
        shardings = state_shardings(model_cfg, optimizer, mesh, ShardingRules())
        state = create_state(model_cfg, optimizer, shardings, seed=0)
        graphdef, _ = abstract_model(model_cfg)
        rng = np.random.default_rng(1)
        batch = {
            "tokens": jnp.asarray(rng.integers(0, 1024, (4, 32)), jnp.int32),
            "segment_ids": jnp.asarray(np.repeat([[1] * 10 + [2] * 22], 4, 0), jnp.int32),
            "positions": jnp.asarray(np.repeat([list(range(10)) + list(range(22))], 4, 0), jnp.int32),
            "loss_mask": jnp.asarray(rng.integers(0, 2, (4, 32)), jnp.int32),
        }
        one, m1 = jax.jit(make_train_step(graphdef, optimizer, schedule, 1, next_token_objective(1e-4)))(state, batch)
        two, m2 = jax.jit(make_train_step(graphdef, optimizer, schedule, 2, next_token_objective(1e-4)))(state, batch)
    assert abs(float(m1["loss"]) - float(m2["loss"])) < 1e-6 and float(m1["target_tokens"]) == float(
        m2["target_tokens"]
    )
    for a, b in zip(jax.tree.leaves(one["params"]), jax.tree.leaves(two["params"]), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def _losses(workdir):
    with open(workdir / "metrics.jsonl") as f:
        return {r["step"]: r["loss"] for r in map(json.loads, f)}


def test_restore_onto_a_different_mesh_continues_with_the_same_loss(tmp_path):
    first = tmp_path / "first"
    train(_synthetic(tmp_path, "--config.steps=3", "--config.checkpoint_every=3", "--config.mesh.data=8"), str(first))
    results = {}
    for name, mesh in (
        ("same", ["--config.mesh.data=8"]),
        ("resharded", ["--config.mesh.data=2", "--config.mesh.fsdp=2", "--config.mesh.tensor=2"]),
    ):
        workdir = tmp_path / name
        shutil.copytree(first, workdir)
        train(_synthetic(tmp_path, "--config.steps=5", "--config.checkpoint_every=100", *mesh), str(workdir))
        results[name] = _losses(workdir)
    assert results["same"][3] == results["resharded"][3]  # the restored history
    for step in (4, 5):
        assert abs(results["same"][step] - results["resharded"][step]) < 1e-5


def test_bad_config_values_are_named_in_one_line(tmp_path, capsys):
    base = ["train", "--config", TINY, "--workdir", str(tmp_path)]
    for override, message in (
        ("--config.stepz=3", "config has no field 'stepz'"),
        ("--config.steps=-3", "config field 'steps' must be an integer >= 1"),
        ("--config.mesh.data=3", "'mesh' is data=3 x fsdp=1 x tensor=1 x sequence=1 = 3 devices"),
        ("--config.optimizer.schedule=linear", "'optimizer.schedule' is 'linear'"),
        ("--config.steps=many", "config field 'steps': expected int, got 'many'"),
        ("--config.profile_steps=0", "config field 'profile_steps' must be an integer >= 1"),
    ):
        assert main([*base, override]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert main(["train", "--config", TINY, "--workdir", "gs://bucket/run"]) == 2
    assert "workdir gs://bucket/run: URLs are not supported" in capsys.readouterr().err
    assert not os.path.exists("gs:")
    with pytest.raises(CwmError, match="'data.keep_observation_prob' must be 0 in sft mode"):
        from cwm_jax.train.config_check import check_train_config

        check_train_config(load_config(TINY, ["--config.mode=sft"]))


def test_tiny_config_writes_metrics_checkpoints_tensorboard_and_a_profile(tmp_path):
    config = load_config(
        TINY,
        [
            "--config.steps=4",
            "--config.checkpoint_every=2",
            "--config.batch_size=8",
            "--config.profile_start_step=2",
            "--config.profile_steps=2",
        ],
    )
    logs: list[str] = []
    result = train(config, str(tmp_path), log=logs.append)
    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["step"] for r in records] == [1, 2, 3, 4] and all(np.isfinite(r["loss"]) for r in records)
    assert {"loss", "grad_norm", "lr", "tokens_per_s", "mfu"} <= set(records[0])
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["2", "4"]
    assert list((tmp_path / "tensorboard").iterdir())
    manifest = json.loads((tmp_path / "checkpoints" / "4" / "manifest" / "metadata").read_text())
    assert manifest["config"]["steps"] == 4 and manifest["versions"]["jax"] == jax.__version__
    assert result["step"] == 4
    profile = tmp_path / "profile" / "process_0"
    assert f"profiled steps 2-3: {profile}" in logs
    assert [p for p in profile.rglob("*.xplane.pb") if p.stat().st_size > 0]


def test_sft_batches_train_only_assistant_tokens(tmp_path):
    from cwm_data.tokenizer import CwmTokenizer
    from cwm_jax.train.batches import make_batches

    config = load_config(TINY, ["--config.mode=sft", "--config.data.keep_observation_prob=0.0"])
    batches = make_batches(config, str(tmp_path), local_batch=8)
    tokenizer = CwmTokenizer.load(str(tmp_path / "data" / "tokenizer.model"))
    rows = [next(batches) for _ in range(3)]
    tokens = np.concatenate([b["tokens"].ravel() for b in rows])
    mask = np.concatenate([b["loss_mask"].ravel() for b in rows])
    trained, untrained = tokenizer.decode(tokens[mask == 1]), tokenizer.decode(tokens[mask == 0])
    assert "<tool: " in trained and "</think>" in trained  # assistant turns
    assert "<|start_header_id|>" in untrained and "<issue_description>" not in trained
    assert "<|start_header_id|>" not in trained and "<output>" not in trained  # headers and tool results


def test_a_rule_a_mesh_cannot_divide_is_overridden_from_the_command_line(tmp_path, capsys):
    base = ["train", "--config", TINY, "--config.data.kind=synthetic", "--config.steps=1", "--config.mesh.tensor=2"]
    assert main([*base, "--workdir", str(tmp_path / "a")]) == 2
    assert "--config.param_rules.kv_heads=None replicates it" in capsys.readouterr().err  # cwm-tiny: 1 KV head
    assert main([*base, "--config.param_rules.kv_heads=None", "--workdir", str(tmp_path / "b")]) == 0
