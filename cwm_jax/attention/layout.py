"""Where attention's activations sit on the mesh: their logical axes, the specs the active sharding rules give
them, and the one mesh axis, if any, that splits the sequence (the axis ring attention travels)."""

from typing import NamedTuple

import jax
from jax.sharding import PartitionSpec

from cwm_common.errors import CwmError
from cwm_jax.sharding import active_rules, spec_for

# The logical axes of attention's activations (self_attention.py constrains them by these too).
Q_AXES = ("batch", "length", "heads", "head_dim")
KV_AXES = ("batch", "length", "kv_heads", "head_dim")
TOKEN_AXES = ("batch", "length")


class AttentionLayout(NamedTuple):
    q: PartitionSpec
    kv: PartitionSpec
    tokens: PartitionSpec
    sequence_axis: str | None  # the mesh axis that splits the sequence, None when it is whole on each device
    sequence_devices: int  # that axis's size (1 when whole)


def attention_layout(name: str) -> AttentionLayout | None:
    """The layout under the active mesh and rules (None outside them); `name` is the attention_impl the
    one-line errors name."""
    rules, mesh = active_rules(), jax.sharding.get_abstract_mesh()
    if rules is None or mesh.empty:
        return None
    table = rules.activations
    q_spec, kv_spec, token_spec = (spec_for(axes, table) for axes in (Q_AXES, KV_AXES, TOKEN_AXES))
    if q_spec[2] != kv_spec[2]:
        raise CwmError(
            f"attention_impl {name} needs query and KV heads split alike (activation_rules heads "
            f"{q_spec[2]!r}, kv_heads {kv_spec[2]!r})"
        )
    length = q_spec[1]
    axes = (length,) if isinstance(length, str) else length or ()
    split = [axis for axis in axes if mesh.shape[axis] > 1]
    if not split:
        return AttentionLayout(q_spec, kv_spec, token_spec, None, 1)
    if not isinstance(length, str):
        raise CwmError(
            f"attention_impl {name} splits the sequence over one mesh axis; activation_rules.length is {length!r}"
        )
    return AttentionLayout(q_spec, kv_spec, token_spec, length, mesh.shape[length])
