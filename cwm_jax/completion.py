"""The text-completion interface evaluations and the debugger use, and its implementation on a CwmModel.

Anything with `complete(prompts, max_new_tokens, stop_tokens, temperature, top_p, seed)` returning the
generated token-id lists can stand in (tests use scripted fakes).
"""

from typing import Protocol

from cwm_jax.engine.generate import generate


class Completer(Protocol):
    def complete(
        self,
        prompts: list[list[int]],
        max_new_tokens: int,
        stop_tokens: tuple[int, ...] = (),
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
    ) -> list[list[int]]: ...


class ModelCompleter:
    """Completions from one engine run over all the prompts (continuous batching; the samples of a repeated
    prompt share its prefill); prompt i draws from random stream (seed, i)."""

    def __init__(self, model):
        self.model = model

    def complete(self, prompts, max_new_tokens, stop_tokens=(), temperature=0.0, top_p=1.0, seed=0):
        """Completions; each is cut short where prompt + completion would pass the model's max_seq_len."""
        # generate rounds its cache up to a multiple of 64 tokens: keep that inside max_seq_len.
        limits = [max(0, min(max_new_tokens, self.model.cfg.max_seq_len - 64 - len(p))) for p in prompts]
        fitting = [i for i, p in enumerate(prompts) if len(p) + 64 < self.model.cfg.max_seq_len]
        out: list[list[int]] = [[] for _ in prompts]
        if fitting:
            generated = generate(
                self.model,
                [prompts[i] for i in fitting],
                [limits[i] for i in fitting],
                temperature=temperature,
                top_p=top_p,
                stop_tokens=stop_tokens,
                seed=seed,
                row_ids=fitting,
            )
            for i, tokens in zip(fitting, generated, strict=True):
                out[i] = tokens
        return out
