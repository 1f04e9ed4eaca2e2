"""Whether a kernel written for one platform's compiler must run in Pallas interpret mode here: on any other
backend it is interpreted, so the code a GPU or TPU compiles is the code tested on a CPU."""

import jax


def interpreting(platform: str) -> bool:
    """platform: "tpu" or "gpu", the backend the kernel is compiled for."""
    return jax.default_backend() != platform
