"""Padding a sequence to a kernel's block multiple without changing what real tokens see."""

import math

import jax.numpy as jnp

# Padded tokens form a document of their own: they see one another (so no row of the kernel is empty, which
# would give NaN in its gradient) and no real token sees them. Real segment ids are >= 0.
PAD_SEGMENT = -1


def padded_length(t: int, block: int) -> int:
    return block * math.ceil(t / block)


def gpu_tile(n: int, largest: int | None = None) -> int:
    """A Triton tile for n entries: a power of two, at least 16 (the GPU's dot), at most `largest`."""
    tile = max(16, 1 << (n - 1).bit_length())
    return tile if largest is None else min(tile, largest)


def pad_sequence(x, length: int, value=0):
    """x [B, t, ...] -> [B, length, ...], the new entries `value`."""
    widths = [(0, 0)] * x.ndim
    widths[1] = (0, length - x.shape[1])
    return jnp.pad(x, widths, constant_values=value)
