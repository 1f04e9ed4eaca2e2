"""Padding a sequence to a kernel's block multiple without changing what real tokens see."""

import math

import jax.numpy as jnp

# Padded tokens form a document of their own: they see one another (so no row of the kernel is empty, which
# would give NaN in its gradient) and no real token sees them. Real segment ids are >= 0.
PAD_SEGMENT = -1


def padded_length(t: int, block: int) -> int:
    return block * math.ceil(t / block)


def pad_sequence(x, length: int, value=0):
    """x [B, t, ...] -> [B, length, ...], the new entries `value`."""
    widths = [(0, 0)] * x.ndim
    widths[1] = (0, length - x.shape[1])
    return jnp.pad(x, widths, constant_values=value)
