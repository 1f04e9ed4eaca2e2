"""The accelerator kernels against reference attention, run here in Pallas interpret mode (splash in TPU
interpret mode) or, for cuDNN, through the same jax.nn call's XLA implementation."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cwm_common.errors import CwmError
from cwm_jax.attention import (
    auto,
    blockwise,
    cudnn,
    paged,
    paged_gpu,
    paged_tpu,
    pallas_gpu,
    reference,
    ring,
    ring_splash,
    splash,
)
from cwm_jax.attention.mask import visibility
from cwm_jax.kv_cache import INVALID
from cwm_jax.presets import from_preset
from cwm_jax.sharding import ShardingRules, activation_rules, make_mesh
from cwm_jax.train.optimizer import make_optimizer
from cwm_jax.train.state import abstract_model, create_state, state_shardings
from cwm_jax.train.step import make_train_step, next_token_objective

B = 2
# (window, query heads per KV head, head_dim, T): no window / smaller than a block / larger than T; GQA 1 and 6;
# head_dim 64 and 128; T of 200 is not a multiple of the 128-token block (two blocks, the second padded).
CASES = {
    "causal-gqa1-d64": (None, 1, 64, 200),
    "window7-gqa6-d128": (7, 6, 128, 200),
    "window300-gqa6-d64": (300, 6, 64, 200),
    "causal-gqa6-d128-short": (None, 6, 128, 40),
}


def _inputs(group, dim, t, dtype=jnp.float32, kv_heads=2, seed=0, b=B):
    rng = np.random.default_rng(seed)
    q, k, v = (jnp.asarray(rng.normal(size=(b, t, h, dim)), dtype) for h in (group * kv_heads, kv_heads, kv_heads))
    # Row 0: two packed documents, positions restarting at the boundary; the others: one document.
    cut = t // 3
    segments = np.ones((b, t), np.int32)
    segments[0, cut:] = 2
    positions = np.arange(t)[None].repeat(b, 0)
    positions[0, cut:] -= cut
    return q, k, v, jnp.asarray(positions), jnp.asarray(segments)


def _attention(impl, pos, seg, window, block_size=128):
    def call(q, k, v):
        kw = dict(q_positions=pos, kv_positions=pos, q_segments=seg, kv_segments=seg)
        return impl(q, k, v, **kw, window=window, block_size=block_size)

    return call


def _values_and_grads(call, q, k, v):
    cotangent = jnp.asarray(np.random.default_rng(9).normal(size=q.shape), jnp.float32)

    def objective(q, k, v):
        return (call(q, k, v).astype(jnp.float32) * cotangent).sum()

    return jax.jit(call)(q, k, v), jax.jit(jax.grad(objective, argnums=(0, 1, 2)))(q, k, v)


def _assert_close(got, want, tolerance):
    """Agreement relative to each tensor's scale (gradients of keys and values sum over many queries)."""
    want = np.asarray(want, np.float32)
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(np.asarray(got, np.float32), want, rtol=0, atol=tolerance * scale)


def _check_against_reference(impl, case, dtype=jnp.float32, tolerance=1e-5):
    window, group, dim, t = CASES[case]
    q, k, v, pos, seg = _inputs(group, dim, t, dtype)
    out, grads = _values_and_grads(_attention(impl, pos, seg, window), q, k, v)
    # The reference in fp32 from the same (rounded) inputs.
    want_out, want_grads = _values_and_grads(
        _attention(reference.attend, pos, seg, window), *(x.astype(jnp.float32) for x in (q, k, v))
    )
    assert out.dtype == dtype and out.shape == q.shape
    _assert_close(out, want_out, tolerance)
    for got, want in zip(grads, want_grads, strict=True):
        _assert_close(got, want, tolerance)


@pytest.mark.parametrize("case", list(CASES))
def test_splash_equals_reference_values_and_gradients(case):
    _check_against_reference(splash.attend, case)


@pytest.mark.parametrize("case", list(CASES))
def test_pallas_gpu_equals_reference_values_and_gradients(case):
    _check_against_reference(pallas_gpu.attend, case)


@pytest.mark.parametrize("impl", [splash.attend, pallas_gpu.attend])
def test_kernels_in_bf16_are_within_bf16_rounding(impl):
    _check_against_reference(impl, "causal-gqa6-d128-short", dtype=jnp.bfloat16, tolerance=2e-2)


def test_pallas_gpu_runs_local_layers_through_the_windowed_kernel():
    """Local layers' forward is our windowed kernel, global layers' jax's mha kernel: each a Pallas call."""
    window, group, dim, t = CASES["window7-gqa6-d128"]
    q, k, v, pos, seg = _inputs(group, dim, t)
    local = str(jax.make_jaxpr(_attention(pallas_gpu.attend, pos, seg, window))(q, k, v))
    assert "cwm_windowed_flash" in local and "mha_forward" not in local
    whole = str(jax.make_jaxpr(_attention(pallas_gpu.attend, pos, seg, None))(q, k, v))
    assert "mha_forward" in whole and "cwm_windowed_flash" not in whole


@pytest.mark.parametrize("case", list(CASES))
def test_cudnn_call_equals_reference(case):
    """cuDNN's arguments (causal, window, the packed-document mask, GQA) through jax.nn's XLA implementation:
    the packed row goes through the mask and a batch of single documents through the plain causal call."""
    window, group, dim, t = CASES[case]
    q, k, v, pos, seg = _inputs(group, dim, t)
    for segments in (seg, jnp.ones_like(seg)):
        positions = pos if segments is seg else jnp.broadcast_to(jnp.arange(t), pos.shape)
        call = _attention(_cudnn_through_xla, positions, segments, window)
        out, grads = _values_and_grads(call, q, k, v)
        want_out, want_grads = _values_and_grads(_attention(reference.attend, positions, segments, window), q, k, v)
        _assert_close(out, want_out, 1e-5)
        for got, want in zip(grads, want_grads, strict=True):
            _assert_close(got, want, 1e-5)


def _cudnn_through_xla(q, k, v, *, q_positions, kv_positions, q_segments, kv_segments, window, block_size):
    del q_positions, kv_positions, block_size
    return cudnn.attend_with("xla", q, k, v, q_segments=q_segments, kv_segments=kv_segments, window=window)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="checks the error a CPU backend gives")
def test_cudnn_on_a_cpu_is_a_one_line_error():
    q, k, v, pos, seg = _inputs(1, 64, 40)
    with pytest.raises(Exception, match="attention_impl cudnn needs a GPU; jax's backend here is cpu"):
        _attention(cudnn.attend, pos, seg, None)(q, k, v)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="checks the choice on a CPU backend")
def test_auto_picks_blockwise_on_a_cpu_and_says_why_once():
    name, why = auto.choice("cpu")
    assert name == "blockwise" and "since jax's backend is cpu" in why and "splash on TPU" in why
    assert auto.choice("tpu")[0] == "splash" and auto.choice("gpu")[0] == "cudnn"
    q, k, v, pos, seg = _inputs(1, 64, 40)
    got = _attention(auto.attend, pos, seg, None, block_size=16)(q, k, v)
    np.testing.assert_array_equal(got, _attention(blockwise.attend, pos, seg, None, block_size=16)(q, k, v))
    # A fresh process traces auto twice (two shapes) and says its choice once.
    program = (
        "import jax.numpy as jnp\n"
        "from cwm_jax.attention import auto\n"
        "for t in (8, 16):\n"
        "    x, s = jnp.ones((1, t, 2, 8)), jnp.ones((1, t), jnp.int32)\n"
        "    auto.attend(x, x, x, q_positions=s, kv_positions=s, q_segments=s, kv_segments=s, window=None,\n"
        "                block_size=8)\n"
    )
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    said = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, check=True)
    assert said.stderr.splitlines() == [why]


@pytest.mark.parametrize("window", [None, 7])
def test_kernels_run_per_device_on_a_mesh(window):
    """Batch over data and fsdp, heads over tensor: each device runs the kernel on its slice (shard_map),
    giving the one-device values, for global (jax's mha) and local layers (our windowed kernel). (The Pallas
    GPU kernels stand for splash too: its TPU interpreter makes the 8 simulated devices meet at barriers, which
    a 2-core machine's CPU runtime never schedules together.)"""
    impl = pallas_gpu.attend
    _, group, dim, t = CASES["causal-gqa6-d128-short"]
    q, k, v, pos, seg = _inputs(group, dim, t, b=4)
    one_device = _attention(impl, pos, seg, window)(q, k, v)
    mesh = make_mesh({"data": 2, "fsdp": 2, "tensor": 2, "sequence": 1})
    with jax.set_mesh(mesh), activation_rules(ShardingRules()):
        call = jax.jit(_attention(impl, pos, seg, window))
        got = call(q, k, v)
        hlo = call.lower(q, k, v).as_text()
    assert "shard_map" in hlo or "sdy.manual_computation" in hlo
    np.testing.assert_allclose(got, one_device, atol=1e-6)


# (window, devices splitting the sequence, T): each device's slice (40 or 300 tokens) padded to whole blocks; a
# window below a block, so the ring stops after two hops and whole query blocks see nothing of the second; a
# window past every slice.
RING_CASES = {"causal": (None, 4, 160), "window30-two-hops": (30, 2, 600), "window300": (300, 4, 160)}


@pytest.mark.parametrize("case", list(RING_CASES))
def test_splash_over_a_split_sequence_is_a_ring_of_splash_kernels(case):
    """Sequence over `sequence`, heads over tensor, batch over data: values and gradients equal reference
    attention's, with keys and values passed by collective permutes and never all-gathered."""
    window, devices, t = RING_CASES[case]
    q, k, v, pos, seg = _inputs(2, 64, t, b=4 // devices)
    want_out, want_grads = _values_and_grads(_attention(reference.attend, pos, seg, window), q, k, v)
    mesh = make_mesh({"sequence": devices, "tensor": 2, "data": 4 // devices, "fsdp": 1})
    call = _attention(splash.attend, pos, seg, window)
    with jax.set_mesh(mesh), activation_rules(ShardingRules()):
        out, grads = _values_and_grads(call, q, k, v)
        hlo = jax.jit(jax.grad(lambda *x: call(*x).sum(), argnums=(0, 1, 2))).lower(q, k, v).compile().as_text()
    assert hlo is not None and "collective-permute" in hlo and "all-gather" not in hlo
    _assert_close(out, want_out, 1e-5)
    for got, want in zip(grads, want_grads, strict=True):
        _assert_close(got, want, 1e-5)


@pytest.mark.parametrize("window", [None, 1, 2, 7, 40, 41, 42, 79, 81, 200])
def test_the_ring_stops_after_the_hops_a_window_reaches(window):
    t, devices = 40, 4
    pos, seg = jnp.arange(t * devices)[None], jnp.zeros((1, t * devices), jnp.int32)
    seen = np.asarray(visibility(pos, pos, seg, seg, window))[0]

    def slices(i, j):  # does any query of slice i see a key of slice j?
        return seen[i * t : (i + 1) * t, j * t : (j + 1) * t].any()

    reached = [h for h in range(devices) if any(slices(i, i - h) for i in range(h, devices))]
    assert reached == list(range(len(reached)))  # the hops a window reaches are the first ones
    assert ring_splash.hops_reached(t, devices, window) == len(reached)


def test_kernels_that_cannot_split_the_sequence_say_so():
    q, k, v, pos, seg = _inputs(1, 64, 40, b=4)
    mesh = make_mesh({"sequence": 2, "tensor": 2, "data": 2, "fsdp": 1})
    with jax.set_mesh(mesh), activation_rules(ShardingRules()):
        with pytest.raises(
            CwmError, match="attention_impl pallas_gpu needs the sequence unsplit .mesh axis 'sequence'"
        ):
            _attention(pallas_gpu.attend, pos, seg, None)(q, k, v)


@pytest.mark.parametrize("kernel", [paged_gpu.attend, paged_tpu.attend])
@pytest.mark.parametrize("window", [None, 20])
def test_the_paged_kernels_equal_the_gather_over_stacked_pools_and_ring_tables(kernel, window):
    """Layer 1 of a stack of pools; row 0 a full table holding 0..70, row 1 a ring whose entries hold positions
    out of order, row 2 a short sequence with empty entries; a chunk of 5 queries (6 query heads over 2)."""
    rng = np.random.default_rng(0)
    b, c, heads, kv_heads, dim, page, pages, width = 3, 5, 6, 2, 64, 16, 40, 6
    pool_k, pool_v = (jnp.asarray(rng.normal(size=(2, pages, page, kv_heads, dim)), jnp.float32) for _ in range(2))
    q = jnp.asarray(rng.normal(size=(b, c, heads, dim)), jnp.float32)
    held = np.full((b, width * page), INVALID, np.int32)
    held[0, :71] = np.arange(71)
    held[1] = np.roll(np.arange(30, 30 + width * page), 20)
    held[2, :9] = np.arange(9)
    kw = dict(
        block=1,
        table=jnp.asarray(rng.permutation(pages)[: b * width].reshape(b, width), jnp.int32),
        kv_positions=jnp.asarray(held),
        q_positions=jnp.asarray([np.arange(71, 76), np.arange(126, 131), np.arange(9, 14)], jnp.int32),
        window=window,
        block_size=16,
    )
    got = jax.jit(lambda q, k, v: kernel(q, k, v, **kw))(q, pool_k, pool_v)
    _assert_close(got, paged.gather_reference(q, pool_k, pool_v, **kw), 1e-5)


def _lowered_for(monkeypatch, platform, fn, *args):
    """fn compiled to the accelerator's kernels (Mosaic for "tpu", Triton for "cuda"), lowered here: the
    kernels' own compilers run, so what they refuse (block shapes, primitives) fails on a CPU too."""
    monkeypatch.setattr(jax, "default_backend", lambda: {"tpu": "tpu", "cuda": "gpu"}[platform])
    return jax.jit(fn).trace(*args).lower(lowering_platforms=(platform,)).as_text()


@pytest.mark.parametrize("platform, impl", [("tpu", splash.attend), ("cuda", pallas_gpu.attend)])
@pytest.mark.parametrize("window", [None, 64])
def test_training_kernels_compile_for_their_accelerator(monkeypatch, platform, impl, window):
    q, k, v, pos, seg = _inputs(4, 128, 256, jnp.bfloat16)
    call = _attention(impl, pos, seg, window)
    lowered = _lowered_for(monkeypatch, platform, jax.grad(lambda *x: call(*x).astype(jnp.float32).sum()), q, k, v)
    assert ("tpu_custom_call" if platform == "tpu" else "__gpu$xla.gpu.triton") in lowered


@pytest.mark.parametrize("window", [None, 64])
def test_ring_attention_on_a_tpu_is_a_ring_of_splash_kernels(monkeypatch, window):
    """`ring` on a TPU: the per-chunk step is splash, compiled by Mosaic, with the chunks passed by permutes."""
    q, k, v, pos, seg = _inputs(2, 128, 512, jnp.bfloat16, b=2)
    call = _attention(ring.attend, pos, seg, window)
    mesh = make_mesh({"sequence": 2, "tensor": 2, "data": 2, "fsdp": 1})
    with jax.set_mesh(mesh), activation_rules(ShardingRules()):
        grad = jax.grad(lambda *x: call(*x).astype(jnp.float32).sum(), argnums=(0, 1, 2))
        lowered = _lowered_for(monkeypatch, "tpu", grad, q, k, v)
    assert "tpu_custom_call" in lowered and "collective_permute" in lowered


@pytest.mark.parametrize("platform, kernel", [("tpu", paged_tpu.attend), ("cuda", paged_gpu.attend)])
def test_paged_kernels_compile_for_their_accelerator(monkeypatch, platform, kernel):
    b, c, heads, kv_heads, dim, page, pages, width = 3, 4, 8, 2, 128, 16, 40, 6
    pool = jnp.ones((2, pages, page, kv_heads, dim), jnp.bfloat16)
    kw = dict(
        block=1,
        table=jnp.zeros((b, width), jnp.int32),
        kv_positions=jnp.zeros((b, width * page), jnp.int32),
        q_positions=jnp.zeros((b, c), jnp.int32),
        window=32,
        block_size=16,
    )
    q = jnp.ones((b, c, heads, dim), jnp.bfloat16)
    lowered = _lowered_for(monkeypatch, platform, lambda q, k, v: kernel(q, k, v, **kw), q, pool, pool)
    assert ("tpu_custom_call" if platform == "tpu" else "__gpu$xla.gpu.triton") in lowered


def _train_step(attention_impl, optimizer_cfg, dtype):
    """One train step of the tiny model (window 8, GQA 2) on a packed batch: new params and metrics."""
    model_cfg = from_preset("cwm-tiny", n_kv_heads=2, sliding_window=8, attention_impl=attention_impl, dtype=dtype)
    optimizer, schedule = make_optimizer(optimizer_cfg, 10)
    mesh = make_mesh({"data": 1}, devices=jax.devices()[:1])
    with jax.set_mesh(mesh):
        state = create_state(model_cfg, optimizer, state_shardings(model_cfg, optimizer, mesh, ShardingRules()), 0)
        rng = np.random.default_rng(1)
        batch = {
            "tokens": jnp.asarray(rng.integers(0, 1024, (2, 40)), jnp.int32),
            "segment_ids": jnp.asarray(np.repeat([[1] * 15 + [2] * 25], 2, 0), jnp.int32),
            "positions": jnp.asarray(np.repeat([list(range(15)) + list(range(25))], 2, 0), jnp.int32),
            "loss_mask": jnp.ones((2, 40), jnp.int32),
        }
        step = make_train_step(abstract_model(model_cfg)[0], optimizer, schedule, 1, next_token_objective(1e-4))
        return jax.jit(step)(state, batch)


# (kernel, compute dtype, tolerance): cuDNN's flash attention runs in bf16 only, so its step is compared in bf16.
TRAIN_STEPS = [
    ("splash", "float32", 1e-5),
    ("pallas_gpu", "float32", 1e-5),
    pytest.param("cudnn", "bfloat16", 2e-2, marks=pytest.mark.gpu),
]


@pytest.mark.parametrize("impl, dtype, tolerance", TRAIN_STEPS)
def test_a_train_step_with_a_kernel_equals_the_reference_models(impl, dtype, tolerance):
    from cwm_common.experiment_config import load_config

    optimizer_cfg = load_config("configs/tiny.py", []).optimizer
    want_state, want = _train_step("reference", optimizer_cfg, dtype)
    got_state, got = _train_step(impl, optimizer_cfg, dtype)
    assert float(got["loss"]) == pytest.approx(float(want["loss"]), rel=tolerance)
    assert float(got["grad_norm"]) == pytest.approx(float(want["grad_norm"]), rel=10 * tolerance)
    for a, b in zip(jax.tree.leaves(got_state["params"]), jax.tree.leaves(want_state["params"]), strict=True):
        np.testing.assert_allclose(a, b, atol=0.1 * tolerance)


@pytest.mark.gpu
@pytest.mark.parametrize("case", list(CASES))
def test_cudnn_kernel_on_a_gpu(case):
    _check_against_reference(cudnn.attend, case, dtype=jnp.bfloat16, tolerance=2e-2)


@pytest.mark.gpu
@pytest.mark.parametrize("case", list(CASES))
def test_pallas_gpu_kernel_on_a_gpu(case):
    _check_against_reference(pallas_gpu.attend, case, dtype=jnp.bfloat16, tolerance=2e-2)


@pytest.mark.tpu
@pytest.mark.parametrize("case", list(CASES))
def test_splash_kernel_on_a_tpu(case):
    _check_against_reference(splash.attend, case, dtype=jnp.bfloat16, tolerance=2e-2)
