"""The rollout engine: continuous batching, the paged cache, shared prefixes and kept episodes."""

import dataclasses
import logging
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from hf_fixtures import windowed_pair

import cwm_jax
from cwm_common.errors import CwmError
from cwm_jax.engine.engine import Engine, EngineConfig, Request
from cwm_jax.engine.generate import GenerationSession
from cwm_jax.model import CwmModel
from cwm_jax.sampling import Sampling, row_keys
from cwm_jax.sharding import ShardingRules, make_mesh, on_mesh, param_shardings

F, S = "full_attention", "sliding_attention"
RNG = np.random.default_rng(1)
PROMPTS = [RNG.integers(3, 320, n).tolist() for n in (21, 9, 14, 5, 30)]
# Small pages, chunks and slots, so requests cross pages, chunks and the window of 8 and wait for slots.
SMALL = EngineConfig(slots=2, max_len=64, page_size=4, prefill_chunk=8, prefill_rows=2, decode_steps=3)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return windowed_pair(str(tmp_path_factory.mktemp("engine")))


def _keys(seed, n):
    return np.asarray(row_keys(seed, range(n)))


def _requests(prompts, limits, seed=0, keep=False):
    keys = _keys(seed, len(prompts))
    return [
        Request(list(p), m, keys[i], i if keep else None) for i, (p, m) in enumerate(zip(prompts, limits, strict=True))
    ]


def _full_forward_logprobs(model, prompt, tokens):
    full = jax.nn.log_softmax(model(jnp.asarray([prompt + tokens], jnp.int32))[0], axis=-1)
    return [float(full[len(prompt) - 1 + i, t]) for i, t in enumerate(tokens)]


def test_requests_joining_a_running_batch_get_transformers_tokens_whatever_else_runs(pair):
    hf, model = pair
    limits = [14, 6, 11, 17, 9]
    engine = Engine(model, SMALL)
    first = engine.submit(_requests(PROMPTS[:2], limits[:2]))
    results = {}
    for _ in range(2):
        results.update(engine.step())
    assert not results and all(s is not None for s in engine.slot_of)  # one mid-prefill, one mid-decode
    later = engine.submit(_requests(PROMPTS[2:], limits[2:]))
    while engine.busy():
        results.update(engine.step())
    completions = [results[i] for i in first + later]
    for prompt, limit, done in zip(PROMPTS, limits, completions, strict=True):
        with torch.no_grad():
            expected = hf.generate(
                torch.tensor([prompt]), max_new_tokens=limit, do_sample=False, eos_token_id=None, pad_token_id=0
            )[0, len(prompt) :].tolist()
        assert done.tokens == expected
        np.testing.assert_allclose(done.logprobs, _full_forward_logprobs(model, prompt, done.tokens), atol=1e-4)
        alone = Engine(model, SMALL).run(_requests([prompt], [limit]))[0]
        assert alone.tokens == done.tokens


@pytest.mark.parametrize("attention_impl", ["pallas_gpu", "splash"])
def test_the_paged_kernels_give_the_engines_tokens_and_logprobs(pair, attention_impl):
    """The GPU and TPU paged kernels (interpret mode here) read pages in place through the tables: the requests
    above (ring tables past the window, pages reused, slots refilled) give the gather's tokens and log-probs."""
    _, model = pair
    kernel_model = nnx.eval_shape(lambda: CwmModel(model.cfg.replace(attention_impl=attention_impl), nnx.Rngs(0)))
    nnx.update(kernel_model, nnx.state(model))
    limits = [14, 6, 11, 17, 9]
    want = Engine(model, SMALL).run(_requests(PROMPTS, limits))
    got = Engine(kernel_model, SMALL).run(_requests(PROMPTS, limits))
    for kernel, gather in zip(got, want, strict=True):
        assert kernel.tokens == gather.tokens
        np.testing.assert_allclose(kernel.logprobs, gather.logprobs, atol=1e-5)


def test_compiled_shapes_do_not_depend_on_the_requests(pair, caplog):
    _, model = pair
    mixes = [_requests(PROMPTS, [2, 9, 1, 13, 4]), _requests(PROMPTS[3:] * 3, [7] * 6, seed=5)]
    Engine(model, SMALL).run(_requests(PROMPTS[:1], [3]))
    with jax.log_compiles(True), caplog.at_level(logging.WARNING):
        for requests in mixes:
            Engine(model, SMALL).run(requests)
    compiled = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Compiling ")]
    assert not [m for m in compiled if m.split()[1] in ("prefill", "decode")], compiled


def test_a_group_prefills_its_prompt_once_and_samples_what_separate_requests_do(pair):
    _, model = pair
    prompt, group = PROMPTS[4], 4
    keys = _keys(7, group)
    sampling = Sampling(temperature=1.0, top_p=0.9)
    engine = Engine(model, SMALL, sampling)
    together = engine.run([Request(prompt, 12, keys[j]) for j in range(group)])
    assert engine.stats()["prefill_tokens"] == len(prompt)  # not group x len(prompt)
    apart = [Engine(model, SMALL, sampling).run([Request(prompt, 12, keys[j])])[0] for j in range(group)]
    assert [c.tokens for c in together] == [c.tokens for c in apart]
    for a, b in zip(together, apart, strict=True):
        np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-5)
    assert len({tuple(c.tokens) for c in together}) > 1  # the samples differ: each has its own stream
    assert engine.stats()["pages_free"] == {k: p.size for k, p in engine.pools_host.items()}


def test_an_episodes_next_turn_prefills_only_the_observation(pair):
    _, model = pair
    prompts = [PROMPTS[0], PROMPTS[2]]
    observations = [RNG.integers(3, 320, 6).tolist(), RNG.integers(3, 320, 9).tolist()]
    with GenerationSession(max_len=120, slots=2) as session:
        first = session(model, prompts, 7, row_ids=[10, 11])
        engine = session.engine
        assert engine is not None
        before = engine.stats()["prefill_tokens"]
        contexts = [p + out + obs for p, out, obs in zip(prompts, first, observations, strict=True)]
        second = session(model, contexts, 8, row_ids=[10, 11])
        assert engine.stats()["prefill_tokens"] - before == sum(len(o) for o in observations)
        assert session.engine is engine
    # The same turns generated from scratch.
    assert second == cwm_jax.generate(model, contexts, 8)
    assert engine.stats()["pages_free"] == {k: p.size for k, p in engine.pools_host.items()}


def test_local_pages_follow_the_window_and_every_page_comes_back(pair):
    _, model = pair
    config = EngineConfig(slots=2, max_len=64, page_size=4, prefill_chunk=8, prefill_rows=2, decode_steps=1)
    engine = Engine(model, config)
    layout = engine.layout
    window_pages = math.ceil(model.cfg.sliding_window / config.page_size) + 1  # W + one page
    requests = _requests([PROMPTS[i % 5] for i in range(10)], [30] * 10)
    engine.submit(requests)
    held_most, global_allocated = 0, 0
    while engine.busy():
        engine.step()
        for sequence in engine.slot_of:
            if sequence is not None and sequence.pages and sequence.written >= len(sequence.request.prompt):
                held_most = max(held_most, len(sequence.pages.mapped[S]))
    assert held_most == window_pages  # reached and never passed
    global_allocated = sum(math.ceil((len(r.prompt) + 30) / config.page_size) for r in requests)
    assert global_allocated > layout.pages(F)  # the run needed more pages than the pool: freed ones were reused
    for kind, pool in engine.pools_host.items():
        assert pool.in_use == 0 and pool.reserved == 0 and not pool.refs.any(), kind
        assert sorted(pool.free) == list(range(pool.size))


def test_the_engine_keeps_its_pages_on_the_params_mesh(pair):
    _, model = pair
    expected = Engine(model, SMALL).run(_requests(PROMPTS[:3], [9, 9, 9]))
    mesh = make_mesh({"data": 4, "tensor": 2})
    rules = ShardingRules()
    graphdef, state = nnx.split(model)
    with on_mesh(mesh, rules):
        sharded = nnx.merge(graphdef, jax.device_put(nnx.to_pure_dict(state), param_shardings(state, mesh, rules)))
        engine = Engine(sharded, SMALL)
        got = engine.run(_requests(PROMPTS[:3], [9, 9, 9]))
    assert [c.tokens for c in got] == [c.tokens for c in expected]
    pool_k = engine.pools["tail"][0][0]
    assert pool_k.sharding.spec[2] == "tensor"  # [pages, page, kv_heads, head_dim]: KV heads split
    assert pool_k.sharding.shard_shape(pool_k.shape)[2] == model.cfg.n_kv_heads // 2


def test_a_pool_too_small_for_a_request_is_a_one_line_error(pair):
    _, model = pair
    engine = Engine(model, EngineConfig(slots=1, max_len=64, page_size=4, pool_pages=3))
    with pytest.raises(CwmError, match="pool_pages"):
        engine.run(_requests([PROMPTS[0]], [20]))


def test_groups_waiting_on_a_full_pool_give_their_prompt_back_and_generate_the_same(pair):
    """With a pool too small to keep every group's prompt while its samples wait, the groups give their
    prompts' pages back and a waiting sample prefills the prompt again: more prefill, the same tokens."""
    _, model = pair
    requests = [Request(PROMPTS[i % 4], 20, key) for i, key in enumerate(_keys(0, 12))]
    roomy = Engine(model, SMALL)
    expected = roomy.run(requests)
    unique = sum(len(p) for p in PROMPTS[:4])
    assert roomy.stats()["prefill_tokens"] == unique
    tight = Engine(model, dataclasses.replace(SMALL, pool_pages=12))
    assert [c.tokens for c in tight.run(requests)] == [c.tokens for c in expected]
    assert tight.stats()["prefill_tokens"] > unique
    assert tight.stats()["pages_free"] == {k: 12 for k in tight.pools_host}


def test_a_one_row_session_continues_past_the_window_in_a_pool_sized_for_one_row(pair):
    """A continued turn counts the window's pages it already holds towards its reservation (the pool holds
    one row: reserving them twice would refuse it), and a row given an unrelated prompt gives its stale cache
    back instead of failing."""
    _, model = pair
    prompt, observation = PROMPTS[4] + PROMPTS[1], RNG.integers(3, 320, 10).tolist()
    with GenerationSession(max_len=120) as session:  # the engine's max_len: the model's 128
        first = session(model, [prompt], 20)
        engine = session.engine
        assert engine is not None
        before = engine.stats()["prefill_tokens"]
        context = prompt + first[0] + observation
        second = session(model, [context], 120 - len(context))
        assert engine.stats()["prefill_tokens"] - before == len(observation)
        assert second == cwm_jax.generate(model, [context], 120 - len(context))
        assert session(model, [PROMPTS[2] * 5], 40) == cwm_jax.generate(model, [PROMPTS[2] * 5], 40)
        assert session.engine is engine
