"""Generation with the KV cache against transformers and against recomputing everything."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from hf_fixtures import windowed_pair

import cwm_jax
from cwm_jax.kv_cache import cache_bytes_per_token
from cwm_jax.model import CwmModel
from cwm_jax.sharding import ShardingRules, make_mesh, on_mesh, param_shardings

RNG = np.random.default_rng(0)
PROMPTS = [RNG.integers(3, 320, n).tolist() for n in (20, 13, 7)]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return windowed_pair(str(tmp_path_factory.mktemp("gen")))


def _greedy_by_recomputing(model, prompt, steps):
    """Every step runs the whole sequence again, padded at the end to one length (one compile; a causal
    model's logits at a position do not see what follows it)."""
    forward = nnx.jit(lambda m, tokens: m(tokens))
    tokens = list(prompt)
    for _ in range(steps):
        padded = np.zeros((1, len(prompt) + steps), np.int32)
        padded[0, : len(tokens)] = tokens
        logits = forward(model, jnp.asarray(padded))
        tokens.append(int(jnp.argmax(logits[0, len(tokens) - 1])))
    return tokens[len(prompt) :]


def test_greedy_equals_transformers_generate_across_the_window(pair):
    hf, model = pair
    prompt = PROMPTS[0]  # 20 tokens, window 8; 15 more cross it again
    with torch.no_grad():
        expected = hf.generate(
            torch.tensor([prompt]), max_new_tokens=15, do_sample=False, eos_token_id=None, pad_token_id=0
        )[0, len(prompt) :].tolist()
    assert cwm_jax.generate(model, [prompt], 15) == [expected]


@pytest.mark.slow
def test_cached_decoding_equals_recomputing_each_step(pair):
    _, model = pair
    assert cwm_jax.generate(model, [PROMPTS[1]], 15) == [_greedy_by_recomputing(model, PROMPTS[1], 15)]


def test_ring_buffer_equals_full_cache_and_batching_equals_one_at_a_time(pair):
    _, model = pair
    batched = cwm_jax.generate(model, PROMPTS, 15)
    assert cwm_jax.generate(model, PROMPTS, 15, ring_cache=False) == batched
    assert [cwm_jax.generate(model, [p], 15)[0] for p in PROMPTS] == batched
    # A short prefill chunk makes the prompt cross several chunks and the ring wrap during prefill.
    assert cwm_jax.generate(model, PROMPTS, 15, prefill_chunk=8) == batched


def test_stops_limits_logprobs_and_sampling(pair):
    _, model = pair
    greedy = cwm_jax.generate(model, PROMPTS, 15)
    stop = greedy[0][4]
    out = cwm_jax.generate(model, PROMPTS, [15, 3, 15], stop_tokens=(stop,))
    assert out[0] == greedy[0][: greedy[0].index(stop) + 1] and out[1] == greedy[1][:3]
    tokens, logps = cwm_jax.generate(model, [PROMPTS[1]], 5, return_logprobs=True)
    full = jax.nn.log_softmax(model(jnp.asarray([PROMPTS[1] + tokens[0]], jnp.int32))[0], axis=-1)
    want = [float(full[len(PROMPTS[1]) - 1 + i, t]) for i, t in enumerate(tokens[0])]
    np.testing.assert_allclose(logps[0], want, atol=1e-4)
    sampled = cwm_jax.generate(model, PROMPTS, 15, temperature=1.0, top_p=0.95, seed=3)
    assert sampled == cwm_jax.generate(model, PROMPTS, 15, temperature=1.0, top_p=0.95, seed=3)
    assert sampled != cwm_jax.generate(model, PROMPTS, 15, temperature=1.0, top_p=0.95, seed=4)
    assert cwm_jax.generate(model, PROMPTS, 15, temperature=0.7, top_k=1) == greedy
    # Each row has its own stream: rows generated apart, with their ids, draw what the whole batch drew.
    apart = [
        cwm_jax.generate(model, [p], 15, temperature=1.0, top_p=0.95, seed=3, row_ids=[i])
        for i, p in enumerate(PROMPTS)
    ]
    assert [rows[0] for rows in apart] == sampled
    assert cwm_jax.generate(model, PROMPTS[1:], 15, temperature=1.0, top_p=0.95, seed=3) != sampled[1:]


def test_blockwise_cache_attention_generates_what_reference_does(pair):
    """Cache slots in blocks of 4 (so the cache is many blocks, some empty, the local ring wrapping)."""
    _, model = pair
    graphdef, state = nnx.split(model)
    blocked_cfg = model.cfg.replace(attention_impl="blockwise", attention_block_size=4)
    blocked = nnx.merge(nnx.split(nnx.eval_shape(lambda: CwmModel(blocked_cfg, nnx.Rngs(0))))[0], state)
    for chunk in (64, 8):
        want, want_logps = cwm_jax.generate(model, PROMPTS, 15, prefill_chunk=chunk, return_logprobs=True)
        got, logps = cwm_jax.generate(blocked, PROMPTS, 15, prefill_chunk=chunk, return_logprobs=True)
        assert got == want
        for a, b in zip(logps, want_logps, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-4)


def test_generation_on_a_mesh_matches_one_device(pair):
    _, model = pair
    expected = cwm_jax.generate(model, PROMPTS, 15)
    mesh = make_mesh({"data": 4, "tensor": 2})
    rules = ShardingRules()
    graphdef, state = nnx.split(model)
    with on_mesh(mesh, rules):
        sharded = nnx.merge(graphdef, jax.device_put(nnx.to_pure_dict(state), param_shardings(state, mesh, rules)))
        assert cwm_jax.generate(sharded, PROMPTS + [PROMPTS[0]], 15) == expected + [expected[0]]


def test_cwm_32b_cache_follows_the_window():
    cfg = cwm_jax.from_preset("cwm-32b")
    ring, full = cache_bytes_per_token(cfg, 131072), cache_bytes_per_token(cfg, 131072, ring=False)
    assert full == 64 * 2 * 8 * 128 * 2  # 256 KiB per token when every layer keeps everything
    # Local layers hold the window's pages: W keys lie in at most W / page + 1 pages of 16 positions.
    assert ring == (16 * 131072 + 48 * (8192 + 16)) * 2 * 8 * 128 * 2 / 131072
    assert ring / full < 0.3
