"""Batched generation with a KV cache: chunked prefill, then a jit-compiled decode loop.

`generate(model, prompts, max_new_tokens, temperature=0.0, ...)` takes token-id lists of any lengths and
returns the generated token-id lists (a stop token, when hit, is the last token). Temperature 0 is greedy;
otherwise temperature, top-k and top-p filter the distribution. Log-probs of the sampled tokens (under
the temperature-scaled distribution, before top-k/top-p filtering: the behaviour policy RL needs) come
back with `return_logprobs=True`.
"""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cwm_common.errors import CwmError
from cwm_jax.kv_cache import init_cache


@dataclasses.dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0


def sample_token(logits: jax.Array, keys: jax.Array, sampling: Sampling) -> tuple[jax.Array, jax.Array]:
    """(token [B], log-prob [B]) from logits [B, V] (fp32), row b drawn with keys[b]."""
    if sampling.temperature == 0.0:
        token = jnp.argmax(logits, axis=-1)
        logp = jax.nn.log_softmax(logits, axis=-1)
        return token, jnp.take_along_axis(logp, token[:, None], axis=-1)[:, 0]
    scaled = logits / sampling.temperature
    logp = jax.nn.log_softmax(scaled, axis=-1)
    filtered = scaled
    if sampling.top_k > 0:
        kth = jax.lax.top_k(scaled, sampling.top_k)[0][:, -1:]
        filtered = jnp.where(scaled < kth, -jnp.inf, filtered)
    if sampling.top_p < 1.0:
        order = jnp.argsort(-filtered, axis=-1)
        sorted_probs = jnp.take_along_axis(jax.nn.softmax(filtered, axis=-1), order, axis=-1)
        # Keep the smallest prefix whose mass reaches top_p (the first token always stays).
        keep_sorted = (jnp.cumsum(sorted_probs, axis=-1) - sorted_probs) < sampling.top_p
        keep = jnp.zeros_like(keep_sorted).at[jnp.arange(order.shape[0])[:, None], order].set(keep_sorted)
        filtered = jnp.where(keep, filtered, -jnp.inf)
    token = jax.vmap(jax.random.categorical)(keys, filtered)
    return token, jnp.take_along_axis(logp, token[:, None], axis=-1)[:, 0]


def row_keys(seed: int, row_ids) -> jax.Array:
    """One PRNG key per row, from the seed and the row's id."""
    base = jax.random.PRNGKey(seed)
    return jax.vmap(lambda row: jax.random.fold_in(base, row))(jnp.asarray(list(row_ids), jnp.uint32))


def _round_up(n: int, multiple: int) -> int:
    return max(multiple, math.ceil(n / multiple) * multiple)


@functools.partial(jax.jit, static_argnames=("graphdef", "sampling", "chunk", "max_new"))
def _generate(graphdef, params, cache, tokens, lengths, limits, stop, keys, *, sampling, chunk, max_new):
    model = nnx.merge(graphdef, params)
    batch, padded = tokens.shape
    rows = jnp.arange(batch)

    def prefill(i, carry):
        cache, last = carry
        start = i * chunk
        window = jax.lax.dynamic_slice_in_dim(tokens, start, chunk, axis=1)
        positions = start + jnp.broadcast_to(jnp.arange(chunk), (batch, chunk))
        logits, cache = model.extend(window, positions, positions < lengths[:, None], cache)
        here = (lengths - 1 >= start) & (lengths - 1 < start + chunk)
        row_logits = logits[rows, jnp.clip(lengths - 1 - start, 0, chunk - 1)]
        return cache, jnp.where(here[:, None], row_logits, last)

    vocab = model.cfg.vocab_size
    cache, logits = jax.lax.fori_loop(0, padded // chunk, prefill, (cache, jnp.zeros((batch, vocab), jnp.float32)))

    def step(state):
        cache, logits, position, count, done, out, logps, keys = state
        keys, drawn = jnp.moveaxis(jax.vmap(jax.random.split)(keys), 1, 0)
        token, logp = sample_token(logits, drawn, sampling)
        out = out.at[rows, count].set(jnp.where(done, out[rows, count], token))
        logps = logps.at[rows, count].set(jnp.where(done, logps[rows, count], logp))
        count = count + (~done)
        finished = done | jnp.isin(token, stop) | (count >= limits)
        next_logits, cache = model.extend(token[:, None], position[:, None], ~done[:, None], cache)
        position = position + (~done)
        return cache, next_logits[:, 0], position, count, finished, out, logps, keys

    zeros = jnp.zeros((batch,), jnp.int32)
    state = (
        cache,
        logits,
        lengths,
        zeros,
        limits <= 0,
        jnp.zeros((batch, max_new), jnp.int32),
        jnp.zeros((batch, max_new), jnp.float32),
        keys,
    )
    _, _, _, count, _, out, logps, _ = jax.lax.while_loop(lambda s: ~jnp.all(s[4]), step, state)
    return out, logps, count


def generate(
    model,
    prompts: list[list[int]],
    max_new_tokens: int | list[int],
    temperature: float = 0.0,
    top_p: float = 1.0,
    top_k: int = 0,
    stop_tokens: tuple[int, ...] = (),
    seed: int = 0,
    row_ids: list[int] | None = None,
    prefill_chunk: int = 64,
    ring_cache: bool = True,
    return_logprobs: bool = False,
):
    """Generated token-id lists for token-id `prompts` (and their log-probs when return_logprobs). Row i
    samples from its own random stream, (seed, row_ids[i]) (default: its index), whatever else is batched
    with it: a batch split over processes draws what the whole batch would."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise CwmError("generate: every prompt needs at least one token")
    cfg = model.cfg
    limits = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
    if len(limits) != len(prompts):
        raise CwmError(f"generate: {len(limits)} max_new_tokens for {len(prompts)} prompts")
    if min(limits) < 0 or temperature < 0 or not 0 < top_p <= 1 or top_k < 0:
        raise CwmError(
            f"generate: max_new_tokens >= 0, temperature >= 0, 0 < top_p <= 1 and top_k >= 0 are required "
            f"(got {min(limits)}, {temperature}, {top_p}, {top_k})"
        )
    lengths = [len(p) for p in prompts]
    chunk = min(prefill_chunk, _round_up(max(lengths), 8))
    padded = _round_up(max(lengths), chunk)
    max_new = _round_up(max(max(limits), 1), 16)  # bucketed: fewer distinct compiles
    needed = max(n + m for n, m in zip(lengths, limits, strict=True))
    max_len = _round_up(max(needed, padded) + 1, 64)
    if max_len > cfg.max_seq_len:
        raise CwmError(
            f"generate: prompt + max_new_tokens ({needed}) exceeds the model's max_seq_len ({cfg.max_seq_len})"
        )
    tokens = np.zeros((len(prompts), padded), np.int32)
    for i, prompt in enumerate(prompts):
        tokens[i, : len(prompt)] = prompt
    graphdef, params = nnx.split(model)
    cache = init_cache(cfg, len(prompts), max_len, chunk, ring=ring_cache)
    out, logps, count = _generate(
        graphdef,
        params,
        cache,
        jnp.asarray(tokens),
        jnp.asarray(lengths, jnp.int32),
        jnp.asarray(limits, jnp.int32),
        jnp.asarray(list(stop_tokens) or [-1], jnp.int32),
        row_keys(seed, range(len(prompts)) if row_ids is None else row_ids),
        sampling=Sampling(temperature, top_k, top_p),
        chunk=chunk,
        max_new=max_new,
    )
    out, logps, count = np.asarray(out), np.asarray(logps), np.asarray(count)
    generated = [out[i, : count[i]].tolist() for i in range(len(prompts))]
    if return_logprobs:
        return generated, [logps[i, : count[i]].tolist() for i in range(len(prompts))]
    return generated
