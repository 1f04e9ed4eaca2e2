"""`attention_impl="auto"`: the fastest attention for the backend jax runs on, said once when first traced."""

import jax

from cwm_jax.attention import blockwise, cudnn, splash
from cwm_jax.attention.said_once import say_once

KERNELS = {"tpu": ("splash", splash.attend), "gpu": ("cudnn", cudnn.attend)}


def choice(backend: str) -> tuple[str, str]:
    """(attention_impl, the line that says why) for a jax backend."""
    if backend in KERNELS:
        name = KERNELS[backend][0]
        return name, f"attention_impl auto: {name}, the {backend.upper()} kernel"
    kernels = ", ".join(f"{name} on {b.upper()}" for b, (name, _) in KERNELS.items())
    return "blockwise", f"attention_impl auto: blockwise, since jax's backend is {backend} (kernels: {kernels})"


def attend(q, k, v, **kwargs):
    backend = jax.default_backend()
    name, why = choice(backend)
    say_once(why)
    kernel = KERNELS[backend][1] if backend in KERNELS else blockwise.attend
    return kernel(q, k, v, **kwargs)
