"""`attention_impl="auto"`: the fastest attention for the backend jax runs on, said once when first traced."""

import jax

from cwm_jax.attention import blockwise, cudnn, splash
from cwm_jax.attention.said_once import say_once

KERNELS = {"tpu": "splash", "gpu": "cudnn"}  # backend -> attention_impl; the paged cache follows (paged.py)
IMPLS = {"splash": splash.attend, "cudnn": cudnn.attend, "blockwise": blockwise.attend}


def choice(backend: str) -> tuple[str, str]:
    """(attention_impl, the line that says why) for a jax backend."""
    if backend in KERNELS:
        return KERNELS[backend], f"attention_impl auto: {KERNELS[backend]}, the {backend.upper()} kernel"
    kernels = ", ".join(f"{name} on {b.upper()}" for b, name in KERNELS.items())
    return "blockwise", f"attention_impl auto: blockwise, since jax's backend is {backend} (kernels: {kernels})"


def attend(q, k, v, **kwargs):
    name, why = choice(jax.default_backend())
    say_once(why)
    return IMPLS[name](q, k, v, **kwargs)
