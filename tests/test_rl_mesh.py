"""The RL learner's pieces on a mesh: chunked log-probs equal the full log-softmax and need a fraction of
its memory; the sampler's weights are the learner's, resharded on device; the RL memory plan."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cwm_jax.aot_plan import GIB
from cwm_jax.kv_cache import init_pools, sequence_layout
from cwm_jax.loss import token_logprobs
from cwm_jax.model import CwmModel
from cwm_jax.presets import from_preset
from cwm_jax.sharding import ShardingRules, make_mesh, param_shardings
from cwm_rl.rl_plan import plan_rl_memory
from cwm_rl.sampler_layout import SamplerLayout

CFG = from_preset("cwm-tiny", init_std=0.2)


def _full_logprobs(model, tokens):
    logp = jax.nn.log_softmax(model(tokens)[:, :-1], axis=-1)
    return jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1)[..., 0]


def test_chunked_logprobs_equal_the_full_log_softmax_in_values_and_gradients():
    graphdef, params = nnx.split(CwmModel(CFG, nnx.Rngs(0)))
    tokens = jax.random.randint(jax.random.PRNGKey(1), (3, 77), 0, CFG.vocab_size)  # 76 targets: a ragged chunk
    weights = jax.random.normal(jax.random.PRNGKey(2), (3, 76))

    def objective(logprobs_of):
        return lambda p: jnp.sum(logprobs_of(nnx.merge(graphdef, p)) * weights)

    full = _full_logprobs(nnx.merge(graphdef, params), tokens)
    chunked = token_logprobs(nnx.merge(graphdef, params), tokens, chunk=16)
    np.testing.assert_allclose(chunked, full, rtol=0, atol=1e-5)
    grad_full = jax.grad(objective(lambda m: _full_logprobs(m, tokens)))(params)
    grad_chunked = jax.grad(objective(lambda m: token_logprobs(m, tokens, chunk=16)))(params)
    for a, b in zip(jax.tree.leaves(grad_full), jax.tree.leaves(grad_chunked), strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5 * float(jnp.abs(a).max()))


def test_chunked_logprobs_need_a_fraction_of_the_memory_at_a_long_episode():
    # CWM's vocabulary; blockwise attention, so no T x T scores compete with the logits.
    cfg = CFG.replace(vocab_size=128256, max_seq_len=4096, attention_impl="blockwise", attention_block_size=256)
    graphdef, params = nnx.split(nnx.eval_shape(lambda: CwmModel(cfg, nnx.Rngs(0))))
    tokens = jax.ShapeDtypeStruct((1, 2048), jnp.int32)

    def temporaries(chunk):
        def loss(p, t):
            return jnp.sum(token_logprobs(nnx.merge(graphdef, p), t, chunk=chunk))

        compiled = jax.jit(jax.grad(loss)).lower(params, tokens).compile()
        analysis = compiled.memory_analysis()
        assert analysis is not None  # the CPU backend reports it
        return analysis.temp_size_in_bytes

    whole, chunked = temporaries(2048), temporaries(128)
    logits_bytes = 2048 * cfg.vocab_size * 4
    assert whole > logits_bytes and chunked < whole / 3, (whole, chunked)


def buffers(array):
    return {shard.data.unsafe_buffer_pointer() for shard in array.addressable_shards}


def test_the_sampler_gets_the_learners_params_resharded_on_device():
    learner_mesh = make_mesh({"data": 2, "fsdp": 4})
    rules = ShardingRules.with_overrides({"kv_heads": None})
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: CwmModel(CFG, nnx.Rngs(0))))
    shardings = param_shardings(abstract, learner_mesh, rules)
    params = jax.device_put(nnx.to_pure_dict(nnx.state(CwmModel(CFG, nnx.Rngs(3)), nnx.Param)), shardings)
    layout = SamplerLayout(abstract, {"tensor": -1}, ShardingRules(), "float32")
    layout.place(params)  # compile first: the handover itself is what the guards watch
    with jax.transfer_guard_device_to_host("disallow"), jax.transfer_guard_host_to_device("disallow"):
        placed = layout.place(params)
    for learner, sampler in zip(jax.tree.leaves(params), jax.tree.leaves(placed), strict=True):
        np.testing.assert_array_equal(np.asarray(sampler), np.asarray(learner))
        assert not buffers(sampler) & buffers(learner)  # a copy: the learner's update donates its own
    # Decoding layout: the MLP split over all 8 devices; 6 heads do not divide by 8, so they are replicated.
    up = placed["layers"]["mlp"]["up"]
    layers, d_model, d_ff = up.shape
    assert up.sharding.shard_shape(up.shape) == (layers, d_model, d_ff // 8)
    assert placed["layers"]["attn"]["q"].sharding.is_fully_replicated
    learner_up = params["layers"]["mlp"]["up"]
    assert learner_up.sharding.shard_shape(up.shape) == (layers, d_model // 4, d_ff)


def test_the_rl_plan_counts_the_learner_and_the_samplers_params_and_kv_cache():
    cfg = from_preset("cwm-tiny", n_kv_heads=2)
    rows, tokens = 16, 256

    def plan(sampler_mesh, dtype="bfloat16", chunk=32):
        return plan_rl_memory(cfg, {"fsdp": 8}, sampler_mesh, rows, tokens, logprob_chunk=chunk, sampler_dtype=dtype)

    tensor = plan({"tensor": 8})
    assert tensor.learner.params_gib * GIB == cfg.param_count() * 4 / 8
    # The sampler's params: bfloat16 is half of float32; split over tensor 8, except what does not divide.
    assert plan({"tensor": 8}, "float32").sampler_params_gib == 2 * tensor.sampler_params_gib
    assert cfg.param_count() * 2 / 8 < tensor.sampler_params_gib * GIB < cfg.param_count() * 2 / 2
    cache = jax.eval_shape(lambda: init_pools(cfg, sequence_layout(cfg, tokens, rows)))
    whole = sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(cache))
    per_row = cfg.n_layers * 2 * cfg.n_kv_heads * cfg.head_dim * 4  # fp32 K and V per position
    global_layers = cfg.layer_types.count("full_attention")
    # Every row at the full length on global layers, the window plus a page on local ones (256 > 32 + 16).
    assert whole == rows * per_row // cfg.n_layers * (global_layers * tokens + (cfg.n_layers - global_layers) * 48)
    # 2 kv heads do not divide over tensor 8: each device holds every page. Pages are any row's, so data
    # parallel decoding keeps them all on each device; kv heads over tensor 2 halve them.
    assert tensor.kv_cache_gib * GIB == whole
    assert plan({"data": 8}).kv_cache_gib * GIB == whole
    assert plan({"data": 4, "tensor": 2}).kv_cache_gib * GIB == whole / 2
    # The log-prob chunk bounds the learner's temporaries.
    assert tensor.learner.activations_gib < plan({"tensor": 8}, chunk=256).learner.activations_gib
    assert "KV cache" in tensor.table(80.0) and "colocated (learner + sampler)" in tensor.table(80.0)
