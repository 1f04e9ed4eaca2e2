"""Runs an attention kernel on each device's own slice of a sharded batch.

A Pallas or cuDNN kernel is a custom call the compiler cannot partition, so under a mesh it runs inside
shard_map over the axes that split batch and heads (each device attends its own rows and heads). The
sequence must not be split here: attention over a split sequence is ring attention's job.
"""

from collections.abc import Callable

import jax

from cwm_common.errors import CwmError
from cwm_jax.attention.layout import attention_layout


def per_device(kernel: Callable, name: str, q, k, v, q_segments, kv_segments):
    """kernel(q, k, v, q_segments, kv_segments) -> [B, T, heads, head_dim], on each device's slice."""
    layout = attention_layout(name)
    if layout is None:
        return kernel(q, k, v, q_segments, kv_segments)
    if layout.sequence_axis is not None:
        raise CwmError(
            f"attention_impl {name} needs the sequence unsplit (mesh axis {layout.sequence_axis!r} splits it); "
            "ring and splash attend over a split sequence"
        )
    specs = (layout.q, layout.kv, layout.kv, layout.tokens, layout.tokens)
    sharded = jax.shard_map(kernel, in_specs=specs, out_specs=layout.q, check_vma=False)
    return sharded(q, k, v, q_segments, kv_segments)
