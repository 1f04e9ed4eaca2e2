"""Sharded computation equals one device; meshes and rules from config; named sharding errors."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cwm_common.errors import CwmError
from cwm_jax.loss import next_token_loss
from cwm_jax.model import CwmModel
from cwm_jax.presets import from_preset
from cwm_jax.sharding import ShardingRules, make_mesh, on_mesh, param_shardings, resolve_mesh_shape, spec_for
from cwm_jax.train.state import abstract_model

CFG = from_preset("cwm-tiny", n_kv_heads=2, init_std=0.1, sliding_window=8)


def _loss_and_grads(params, graphdef, tokens, segments):
    def loss(p):
        total, count = next_token_loss(nnx.merge(graphdef, p)(tokens, segment_ids=segments), tokens)
        return total / count

    return jax.value_and_grad(loss)(params)


@pytest.mark.parametrize(
    "mesh_spec,attention",
    [
        (dict(data=2, fsdp=2, tensor=2), "reference"),
        (dict(data=2, tensor=2, sequence=2), "reference"),
        (dict(fsdp=8), "reference"),
        (dict(data=2, sequence=4), "ring"),
    ],
)
def test_sharded_loss_and_gradients_equal_one_device(mesh_spec, attention):
    """Against one device with reference attention; ring attention passes K/V around the sequence axis."""
    graphdef, state = nnx.split(CwmModel(CFG, nnx.Rngs(0)))
    params = nnx.to_pure_dict(state)
    rng = np.random.default_rng(0)
    tokens = jnp.asarray(rng.integers(0, CFG.vocab_size, (8, 32)), jnp.int32)
    segments = jnp.asarray(np.repeat([[1] * 20 + [2] * 12], 8, axis=0), jnp.int32)
    expected_loss, expected_grads = jax.jit(_loss_and_grads, static_argnums=1)(params, graphdef, tokens, segments)

    mesh = make_mesh(mesh_spec)
    rules = ShardingRules()
    shardings = param_shardings(state, mesh, rules)
    graphdef, _ = nnx.split(
        nnx.eval_shape(lambda: CwmModel(CFG.replace(attention_impl=attention, attention_block_size=4), nnx.Rngs(0)))
    )
    with on_mesh(mesh, rules):
        sharded = jax.device_put(params, shardings)
        step = jax.jit(_loss_and_grads, static_argnums=1, out_shardings=(None, shardings))
        loss, grads = step(sharded, graphdef, tokens, segments)
        if attention == "ring":
            hlo = step.lower(sharded, graphdef, tokens, segments).compile().as_text()
            assert hlo is not None and "collective-permute" in hlo
    assert len(jax.tree.leaves(sharded)[0].sharding.device_set) > 1 or mesh_spec.get("fsdp") != 8
    assert abs(float(loss) - float(expected_loss)) <= 1e-5
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(expected_grads), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=1e-5 * max(1, np.abs(want).max()))
    q = sharded["layers"]["attn"]["q"]
    assert q.sharding.spec == jax.sharding.PartitionSpec(None, "fsdp", "tensor", None)


def test_mesh_sizes_and_errors():
    assert resolve_mesh_shape({"data": -1, "tensor": 2}, 8) == {"data": 4, "fsdp": 1, "tensor": 2, "sequence": 1}
    with pytest.raises(
        CwmError, match=r"'mesh' is data=3 x fsdp=1 x tensor=1 x sequence=1 = 3 devices, but there are 8"
    ):
        resolve_mesh_shape({"data": 3}, 8)
    with pytest.raises(CwmError, match="'mesh' may have only one axis of -1"):
        resolve_mesh_shape({"data": -1, "fsdp": -1}, 8)
    with pytest.raises(CwmError, match="'mesh' has an unknown axis 'pipeline'"):
        resolve_mesh_shape({"pipeline": 2}, 8)
    with pytest.raises(CwmError, match="do not divide"):
        resolve_mesh_shape({"data": -1, "tensor": 3}, 8)


def test_a_rule_that_cannot_divide_names_tensor_dimension_and_axis():
    _, state = nnx.split(nnx.eval_shape(lambda: CwmModel(from_preset("cwm-tiny"), nnx.Rngs(0))))  # 1 KV head
    with pytest.raises(
        CwmError,
        match=r"cannot shard parameter 'layers/attn/k': dimension 2 \('kv_heads', size 1\) "
        r"does not divide over mesh axis tensor \(2 ways\)",
    ):
        param_shardings(state, make_mesh(dict(data=4, tensor=2)), ShardingRules())
    with pytest.raises(CwmError, match="'param_rules' names an unknown logical axis 'hidden'"):
        ShardingRules.with_overrides(params={"hidden": "fsdp"})
    rules = ShardingRules.with_overrides(params={"kv_heads": None})
    shardings = param_shardings(state, make_mesh(dict(data=4, tensor=2)), rules)
    assert shardings["layers"]["attn"]["k"].spec == jax.sharding.PartitionSpec(None, "fsdp", None, None)


GOLDEN = os.path.join(os.path.dirname(__file__), "data", "cwm32b_shardings.txt")


def test_cwm_32b_shardings_match_the_golden_dump():
    """Every cwm-32b parameter's shape and spec on a production mesh (fsdp=64, tensor=4), against a checked-in
    dump, so no change of rules or layout moves a sharding unnoticed. CWM_UPDATE_GOLDEN=1 rewrites it."""
    _, abstract = abstract_model(from_preset("cwm-32b"))
    mesh_shape = {"data": 1, "fsdp": 64, "tensor": 4, "sequence": 1}
    lines = []
    for path, variable in nnx.to_flat_state(abstract):
        axes = variable.get_metadata()["logical_axes"]
        spec = spec_for(axes, ShardingRules().params, mesh_shape, variable.shape)
        lines.append(f"{'/'.join(map(str, path))} {list(variable.shape)} {list(axes)} -> {tuple(spec)}")
    if os.environ.get("CWM_UPDATE_GOLDEN"):
        with open(GOLDEN, "w") as f:
            f.write("\n".join(lines) + "\n")
    with open(GOLDEN) as f:
        assert lines == f.read().splitlines()
