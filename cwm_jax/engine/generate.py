"""`generate`, served by the rollout engine, and sessions that keep each row's cache between calls.

`generate(model, prompts, max_new_tokens, temperature=0.0, ...)` takes token-id lists of any lengths and
returns the generated token-id lists (a stop token, when hit, is the last token). Temperature 0 is greedy;
otherwise temperature, top-k and top-p filter the distribution. Log-probs of the sampled tokens (under
the temperature-scaled distribution, before top-k/top-p filtering: the behaviour policy RL needs) come
back with `return_logprobs=True`. Row i draws from its own random stream (seed, row_ids[i]).

A `GenerationSession` is called like `generate`; it keeps each row's pages after the call, so a next call
whose prompt for that row extends the previous prompt and completion prefills only the new tokens.
"""

import math

import jax
import numpy as np
from flax import nnx

from cwm_common.errors import CwmError
from cwm_jax.engine.engine import Engine, EngineConfig, Request
from cwm_jax.sampling import Sampling, row_keys

PAGE_SIZE = 16
DECODE_STEPS = 8


def _round_up(n: int, multiple: int) -> int:
    return max(multiple, math.ceil(n / multiple) * multiple)


def _slots_for(limits: list[int], rows: int) -> int:
    """The fewest slots (a power of two, bounding distinct compiles) that finish everything in about as many
    decode steps as the longest request takes anyway."""
    wanted = math.ceil(sum(limits) / max(max(limits), 1))
    return min(rows, 1 << max(0, wanted - 1).bit_length())


class GenerationSession:
    def __init__(self, max_len: int | None = None, slots: int | None = None, keep: bool = True):
        self.max_len, self.slots, self.keep = max_len, slots, keep
        self.engine: Engine | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.engine is not None:
            self.engine.release()
        self.engine = None

    def __call__(
        self,
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
        if not prompts or any(len(p) == 0 for p in prompts):
            raise CwmError("generate: every prompt needs at least one token")
        limits = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
        if len(limits) != len(prompts):
            raise CwmError(f"generate: {len(limits)} max_new_tokens for {len(prompts)} prompts")
        if min(limits) < 0 or temperature < 0 or not 0 < top_p <= 1 or top_k < 0:
            raise CwmError(
                f"generate: max_new_tokens >= 0, temperature >= 0, 0 < top_p <= 1 and top_k >= 0 are required "
                f"(got {min(limits)}, {temperature}, {top_p}, {top_k})"
            )
        lengths = [len(p) for p in prompts]
        needed = max(n + m for n, m in zip(lengths, limits, strict=True))
        max_len = _round_up(max(needed, self.max_len or 0) + 1, 64)  # bucketed: fewer distinct compiles
        if max_len > model.cfg.max_seq_len:
            raise CwmError(
                f"generate: prompt + max_new_tokens ({needed}) exceeds the model's max_seq_len "
                f"({model.cfg.max_seq_len})"
            )
        ids = list(range(len(prompts))) if row_ids is None else list(row_ids)
        config = EngineConfig(
            slots=self.slots or _slots_for(limits, len(prompts)),
            max_len=max_len,
            page_size=PAGE_SIZE,
            prefill_chunk=min(prefill_chunk, _round_up(max(lengths), 8)),
            prefill_rows=min(4, len(prompts)),
            decode_steps=DECODE_STEPS,
            pool_sequences=len(prompts) if self.keep else None,  # every row's cache stays between calls
            ring=ring_cache,
        )
        sampling = Sampling(temperature, top_k, top_p)
        engine = self._engine(model, config, sampling, tuple(stop_tokens))
        keys = np.asarray(row_keys(seed, ids))
        requests = [
            Request(list(p), m, keys[i], ids[i] if self.keep else None)
            for i, (p, m) in enumerate(zip(prompts, limits, strict=True))
        ]
        # Longest limit first: the long requests start at once and the short ones fill the gaps they leave,
        # so every slot stays busy until about the longest request's end.
        order = sorted(range(len(requests)), key=lambda i: -limits[i])
        done = engine.run([requests[i] for i in order])
        results = [done[order.index(i)] for i in range(len(requests))]
        generated = [r.tokens for r in results]
        if return_logprobs:
            return generated, [r.logprobs for r in results]
        return generated

    def _engine(self, model, config: EngineConfig, sampling: Sampling, stops: tuple) -> Engine:
        """The session's engine: the same one (and its cached rows) while the weights, the sampling and the
        cache kind stay and the call fits its max_len (its slots, chunk and pools stay those of the call
        that built it: a cache kept is worth more than a better shape); else a new one."""
        old = self.engine
        if (
            old is not None
            and _same_weights(model, old.params)
            and (old.sampling, old.stop_tokens, old.config.ring) == (sampling, stops, config.ring)
            and config.max_len <= old.config.max_len
        ):
            return old
        self.close()
        self.engine = Engine(model, config, sampling, stops)
        return self.engine


def _same_weights(model, params) -> bool:
    """Whether the model holds exactly the arrays an engine was built on (weights updated in place are new
    arrays: its cached rows belong to the old ones)."""
    current = jax.tree.leaves(nnx.split(model)[1])
    return len(current) == len(jax.tree.leaves(params)) and all(
        a is b for a, b in zip(current, jax.tree.leaves(params), strict=True)
    )


def generate(model, prompts, max_new_tokens, **options):
    """Generated token-id lists for token-id `prompts` (and their log-probs with return_logprobs=True)."""
    with GenerationSession(keep=False) as session:
        return session(model, prompts, max_new_tokens, **options)
