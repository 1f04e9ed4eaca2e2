import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cwm_jax.config import FULL, SLIDING, interleaved_layer_types
from cwm_jax.layer_plan import plan_layers
from cwm_jax.model import CwmModel, positions_from_segments
from cwm_jax.presets import from_preset

# Ten layers, global every 4th plus a global last layer: a scan of 2 blocks of 4 and an unrolled tail of 2.
TEN = (FULL, SLIDING, SLIDING, SLIDING) * 2 + (FULL, FULL)


def _tiny(**changes):
    return from_preset("cwm-tiny", init_std=0.2, sliding_window=8, **changes)


def _assert_close(actual, expected):
    """fp32 agreement relative to the logit scale (different op orders round differently)."""
    expected = np.asarray(expected)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def _same_weights(cfg, source: CwmModel) -> CwmModel:
    model = nnx.eval_shape(lambda: CwmModel(cfg, nnx.Rngs(0)))
    nnx.update(model, nnx.state(source))
    return model


def test_layer_plan():
    assert plan_layers(from_preset("cwm-32b")) == plan_layers(from_preset("cwm-32b")).__class__(4, 16, 64)
    native = from_preset("cwm-32b", layer_types=interleaved_layer_types(63) + (FULL,))
    plan = plan_layers(native)
    assert (plan.period, plan.n_blocks, list(plan.tail)) == (4, 15, [60, 61, 62, 63])
    plan = plan_layers(_tiny(n_layers=10, layer_types=TEN))
    assert (plan.period, plan.n_blocks, list(plan.tail)) == (4, 2, [8, 9])
    assert plan_layers(_tiny(layer_types=(FULL,) * 4)) == plan.__class__(1, 4, 4)


def _count_dots(jaxpr) -> int:
    count = 0
    for eqn in jaxpr.eqns:
        count += eqn.primitive.name == "dot_general"
        for param in eqn.params.values():
            inner = getattr(param, "jaxpr", param)
            if hasattr(inner, "eqns"):
                count += _count_dots(inner)
    return count


def test_64_layers_trace_as_one_block_of_4():
    # Abstract 32B model: only shapes are traced. A layer has 9 matmuls (q, k, v, scores, mix, o, gate, up, down).
    def forward_dots(cfg):
        graphdef, state = nnx.split(nnx.eval_shape(lambda: CwmModel(cfg, nnx.Rngs(0))))
        tokens = jax.ShapeDtypeStruct((1, 16), jnp.int32)
        jaxpr = jax.make_jaxpr(lambda s, t: nnx.merge(graphdef, s)(t))(state, tokens)
        return _count_dots(jaxpr.jaxpr)

    assert forward_dots(from_preset("cwm-32b")) == 4 * 9 + 1
    assert forward_dots(from_preset("cwm-32b", scan_layers=False)) == 64 * 9 + 1


def test_scanned_model_equals_unscanned():
    cfg = _tiny(n_layers=10, layer_types=TEN)
    scanned = CwmModel(cfg, nnx.Rngs(0))
    unrolled = _same_weights(cfg.replace(scan_layers=False), scanned)
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, cfg.vocab_size, (2, 24)), jnp.int32)
    a, b = scanned(tokens), unrolled(tokens)
    assert float(jnp.abs(a).max()) > 1
    _assert_close(b, a)


@pytest.mark.parametrize("impl", ["reference", "blockwise"])
def test_packed_documents_equal_documents_run_alone(impl):
    cfg = _tiny(attention_impl=impl, attention_block_size=8)
    model = CwmModel(cfg, nnx.Rngs(1))
    rng = np.random.default_rng(1)
    doc_a, doc_b = rng.integers(0, cfg.vocab_size, 13), rng.integers(0, cfg.vocab_size, 19)
    packed = jnp.asarray(np.concatenate([doc_a, doc_b])[None], jnp.int32)
    segments = jnp.asarray([[1] * 13 + [2] * 19], jnp.int32)
    together = np.asarray(model(packed, segment_ids=segments))
    alone_a = np.asarray(model(jnp.asarray(doc_a[None], jnp.int32)))
    alone_b = np.asarray(model(jnp.asarray(doc_b[None], jnp.int32)))
    _assert_close(together[0, :13], alone_a[0])
    _assert_close(together[0, 13:], alone_b[0])
    # Without segment ids the second document would see the first: the logits must differ.
    assert np.abs(np.asarray(model(packed))[0, 13:] - alone_b[0]).max() > 1e-2


def test_positions_restart_per_document():
    segments = jnp.asarray([[1, 1, 1, 2, 2, 0, 0], [5, 5, 5, 5, 5, 5, 5]])
    np.testing.assert_array_equal(positions_from_segments(segments), [[0, 1, 2, 0, 1, 0, 1], list(range(7))])


@pytest.mark.parametrize("remat", [pytest.param("full", marks=pytest.mark.slow), "save_dots"])
def test_remat_keeps_values_and_gradients(remat):
    cfg = _tiny()
    plain = CwmModel(cfg, nnx.Rngs(2))
    rematted = _same_weights(cfg.replace(remat=remat), plain)
    tokens = jnp.asarray(np.random.default_rng(2).integers(0, cfg.vocab_size, (2, 16)), jnp.int32)

    def grads(model):
        graphdef, state = nnx.split(model)
        return jax.grad(lambda s: jnp.mean(nnx.merge(graphdef, s)(tokens) ** 2))(state)

    for g_plain, g_remat in zip(jax.tree.leaves(grads(plain)), jax.tree.leaves(grads(rematted)), strict=True):
        np.testing.assert_allclose(g_remat, g_plain, rtol=1e-4, atol=1e-6)
