"""RMSNorm with the statistic computed in fp32 (as CWM and Hugging Face do)."""

import jax
import jax.numpy as jnp
from flax import nnx

from cwm_jax.params import param


class RMSNorm(nnx.Module):
    def __init__(self, dim: int, eps: float, *, param_dtype, stack: int | None = None):
        self.eps = eps
        self.scale = param(None, (dim,), ("embed",), dtype=param_dtype, stack=stack, std=None)

    def __call__(self, x: jax.Array) -> jax.Array:
        xf = x.astype(jnp.float32)
        normed = xf * jax.lax.rsqrt(jnp.mean(jnp.square(xf), axis=-1, keepdims=True) + self.eps)
        # Cast back before the scale, like the HF reference, so bf16 runs round the same way.
        return normed.astype(x.dtype) * self.scale[...].astype(x.dtype)
