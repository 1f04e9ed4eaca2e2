"""Parameter creation with logical axis names, stacked along a leading `layers` axis when asked."""

import jax
import jax.numpy as jnp
from flax import nnx

# Logical axis names used on parameters and activations; cwm_jax maps them to mesh axes in one table.
AXES = ("vocab", "embed", "heads", "kv_heads", "head_dim", "mlp", "layers", "batch", "length")


def param(
    rngs: nnx.Rngs | None, shape: tuple[int, ...], axes: tuple[str, ...], *, dtype, stack: int | None, std: float | None
) -> nnx.Param:
    """A Param of `shape` (normal(std) init, or ones when std is None), with `stack` copies along axis 0.

    The logical axes are kept as Param metadata (`logical_axes`) for the sharding rules.
    """
    assert len(shape) == len(axes) and all(a in AXES for a in axes), (shape, axes)
    if stack is not None:
        shape, axes = (stack, *shape), ("layers", *axes)
    if std is None:
        value = jnp.ones(shape, dtype)
    elif rngs is None:
        raise ValueError("a normal-initialized parameter (std set) needs rngs")
    else:
        value = std * jax.random.normal(rngs.params(), shape, dtype)
    return nnx.Param(value, logical_axes=axes)
