"""The engine's two compiled steps. Their shapes are fixed by the engine's configuration (slots, prefill
rows, chunk, decode steps, pool and table sizes), never by the requests in flight.

`prefill`: up to `rows` sequences each write a chunk of their prompt; rows whose prompt is now complete get
their next-token logits. `decode`: every slot samples and writes `steps` tokens in one call (a slot that
finishes idles to the end of the call), keeping its random stream, count and stop state.
"""

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from cwm_jax.kv_cache import copy_pages, step_view
from cwm_jax.sampling import sample_token


@functools.partial(jax.jit, static_argnames=("graphdef", "layout"), donate_argnames=("pools", "logits"))
def prefill(graphdef, params, pools, logits, tables, copies, slots, tokens, starts, counts, completes, *, layout):
    """tokens [P, C] at positions starts + 0..C-1 (the first counts[i] valid) for slots [P] (rows of
    `logits`; a slot out of range is an unused row); returns (pools, logits, last-token logits [P, V])."""
    model = nnx.merge(graphdef, params)
    pools = copy_pages(model.cfg, pools, copies)
    chunk = tokens.shape[1]
    positions = starts[:, None] + jnp.arange(chunk)[None, :]
    valid = jnp.arange(chunk)[None, :] < counts[:, None]
    hidden, pools = model.extend(tokens, positions, pools, step_view(layout, tables, positions, valid))
    last_hidden = hidden[jnp.arange(tokens.shape[0]), jnp.maximum(counts - 1, 0)]
    last = model.head(last_hidden[:, None])[:, 0]
    keep = jnp.where(completes, slots, logits.shape[0])
    return pools, logits.at[keep].set(last, mode="drop"), last


@functools.partial(
    jax.jit, static_argnames=("graphdef", "layout", "sampling", "steps"), donate_argnames=("pools", "logits")
)
def decode(
    graphdef,
    params,
    pools,
    logits,
    tables,
    copies,
    keys,
    lengths,
    counts,
    limits,
    done,
    stop,
    *,
    layout,
    sampling,
    steps,
):
    """`steps` tokens for every slot not done: returns (pools, logits, keys, lengths, counts, done, tokens
    [S, steps], log-probs [S, steps]); slot s's new tokens are the first (counts after - counts before)."""
    model = nnx.merge(graphdef, params)
    pools = copy_pages(model.cfg, pools, copies)
    slots = logits.shape[0]
    rows = jnp.arange(slots)

    def step(i, state):
        pools, logits, keys, lengths, counts, done, out, logps = state
        live = ~done
        split = jnp.moveaxis(jax.vmap(jax.random.split)(keys), 1, 0)
        token, logp = sample_token(logits, split[1], sampling)
        keys = jnp.where(live[:, None], split[0], keys)  # a stream advances only with its own tokens
        out = out.at[rows, i].set(token)
        logps = logps.at[rows, i].set(logp)
        counts = counts + live
        finished = done | (live & (jnp.isin(token, stop) | (counts >= limits)))
        positions = lengths[:, None]
        view = step_view(layout, tables, positions, live[:, None])
        hidden, pools = model.extend(token[:, None], positions, pools, view)
        logits = jnp.where(live[:, None], model.head(hidden)[:, 0], logits)
        return pools, logits, keys, lengths + live, counts, finished, out, logps

    out = jnp.zeros((slots, steps), jnp.int32)
    state = (pools, logits, keys, lengths, counts, done, out, jnp.zeros((slots, steps), jnp.float32))
    return jax.lax.fori_loop(0, steps, step, state)
