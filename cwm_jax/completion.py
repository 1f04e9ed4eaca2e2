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
    def __init__(self, model, batch_size: int = 8):
        self.model, self.batch_size = model, batch_size

    def complete(self, prompts, max_new_tokens, stop_tokens=(), temperature=0.0, top_p=1.0, seed=0):
        """Completions; each is cut short where prompt + completion would pass the model's max_seq_len."""
        out: list[list[int]] = []
        for start in range(0, len(prompts), self.batch_size):
            batch = prompts[start : start + self.batch_size]
            # generate rounds its cache up to a multiple of 64 tokens: keep that inside max_seq_len.
            room = self.model.cfg.max_seq_len - 64 - max(len(p) for p in batch)
            if room <= 0:
                out += [[] for _ in batch]
                continue
            out += generate(
                self.model,
                batch,
                min(max_new_tokens, room),
                temperature=temperature,
                top_p=top_p,
                stop_tokens=stop_tokens,
                seed=seed + start,
            )
        return out
