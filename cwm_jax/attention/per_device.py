"""Runs an attention kernel on each device's own slice of a sharded batch.

A Pallas or cuDNN kernel is a custom call the compiler cannot partition, so under a mesh it runs inside
shard_map over the axes that split batch and heads (each device attends its own rows and heads). The
sequence must not be split: attention over a split sequence is ring attention's job.
"""

from collections.abc import Callable

import jax

from cwm_common.errors import CwmError
from cwm_jax.attention.ring import KV_AXES, Q_AXES, TOKEN_AXES
from cwm_jax.sharding import active_rules, spec_for


def per_device(kernel: Callable, name: str, q, k, v, q_segments, kv_segments):
    """kernel(q, k, v, q_segments, kv_segments) -> [B, T, heads, head_dim], on each device's slice."""
    rules, mesh = active_rules(), jax.sharding.get_abstract_mesh()
    if rules is None or mesh.empty:
        return kernel(q, k, v, q_segments, kv_segments)
    table = rules.activations
    q_spec, kv_spec, token_spec = (spec_for(a, table) for a in (Q_AXES, KV_AXES, TOKEN_AXES))
    length_axes = (q_spec[1],) if isinstance(q_spec[1], str) else q_spec[1] or ()
    if any(mesh.shape[axis] > 1 for axis in length_axes):
        raise CwmError(f"attention_impl {name} needs the sequence unsplit (activation_rules.length is {q_spec[1]!r})")
    if q_spec[2] != kv_spec[2]:
        raise CwmError(
            f"attention_impl {name} needs query and KV heads split alike (activation_rules heads "
            f"{q_spec[2]!r}, kv_heads {kv_spec[2]!r})"
        )
    sharded = jax.shard_map(
        kernel, in_specs=(q_spec, kv_spec, kv_spec, token_spec, token_spec), out_specs=q_spec, check_vma=False
    )
    return sharded(q, k, v, q_segments, kv_segments)
