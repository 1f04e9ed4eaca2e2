"""Meshes from config and the one table from logical axis names to mesh axes.

Mesh axes: `data` (pure data parallel), `fsdp` (data parallel with parameters and optimizer state sharded),
`tensor` (heads, MLP and vocab split across devices), `sequence` (activations split along the sequence, for
long context). Parameters carry logical axes (cwm_jax/params.py); activations are constrained at a few
points in the model with `constrain`. Changing the parallelism is changing `mesh` (and, rarely, the rules)
in the config.
"""

import contextlib
import contextvars
import dataclasses
import math
from collections.abc import Mapping

import jax
from flax import nnx
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from cwm_common.config_rules import config_error
from cwm_common.errors import CwmError

MESH_AXES = ("data", "fsdp", "tensor", "sequence")

# Parameters: FSDP shards the model dimension, tensor parallelism the per-head and per-unit dimensions.
PARAM_RULES: dict[str, str | tuple[str, ...] | None] = {
    "vocab": "tensor",
    "embed": "fsdp",
    "heads": "tensor",
    "kv_heads": "tensor",
    "head_dim": None,
    "mlp": "tensor",
    "layers": None,
}
# Activations: the batch over every data-parallel axis, the sequence over `sequence`, model dims replicated
# except where tensor parallelism splits them.
ACTIVATION_RULES: dict[str, str | tuple[str, ...] | None] = {
    "batch": ("data", "fsdp"),
    "length": "sequence",
    "embed": None,
    "heads": "tensor",
    "kv_heads": "tensor",
    "head_dim": None,
    "mlp": "tensor",
    "vocab": "tensor",
}


@dataclasses.dataclass(frozen=True)
class ShardingRules:
    params: Mapping = dataclasses.field(default_factory=lambda: dict(PARAM_RULES))
    activations: Mapping = dataclasses.field(default_factory=lambda: dict(ACTIVATION_RULES))

    @classmethod
    def with_overrides(cls, params: Mapping | None = None, activations: Mapping | None = None) -> "ShardingRules":
        param_table, activation_table = dict(PARAM_RULES), dict(ACTIVATION_RULES)
        for table, overrides, name in (
            (param_table, params, "param_rules"),
            (activation_table, activations, "activation_rules"),
        ):
            for axis, target in (overrides or {}).items():
                if axis not in table:
                    raise config_error(name, f"names an unknown logical axis '{axis}'")
                for mesh_axis in _as_tuple(target):
                    if mesh_axis not in MESH_AXES:
                        raise config_error(f"{name}.{axis}", f"names an unknown mesh axis '{mesh_axis}'")
                table[axis] = tuple(target) if isinstance(target, (list, tuple)) else target
        return cls(params=param_table, activations=activation_table)


def _as_tuple(target) -> tuple[str, ...]:
    if target is None:
        return ()
    return tuple(target) if isinstance(target, (list, tuple)) else (target,)


def resolve_mesh_shape(spec: Mapping[str, int], device_count: int) -> dict[str, int]:
    """Axis sizes with at most one -1 ("the rest") filled in, checked against the device count."""
    unknown = sorted(set(spec) - set(MESH_AXES))
    if unknown:
        raise config_error("mesh", f"has an unknown axis '{unknown[0]}'; axes: {', '.join(MESH_AXES)}")
    sizes = {axis: int(spec.get(axis, 1)) for axis in MESH_AXES}
    bad = [a for a, s in sizes.items() if s == 0 or s < -1]
    if bad:
        raise config_error(f"mesh.{bad[0]}", f"must be a positive size or -1, got {sizes[bad[0]]}")
    rest = [a for a, s in sizes.items() if s == -1]
    if len(rest) > 1:
        raise config_error("mesh", f"may have only one axis of -1, got {', '.join(rest)}")
    known = math.prod(s for s in sizes.values() if s != -1)
    if rest:
        if device_count % known:
            raise config_error("mesh", f"has fixed axes ({known}) that do not divide the {device_count} devices")
        sizes[rest[0]] = device_count // known
    if math.prod(sizes.values()) != device_count:
        shape = " x ".join(f"{a}={s}" for a, s in sizes.items())
        raise config_error("mesh", f"is {shape} = {math.prod(sizes.values())} devices, but there are {device_count}")
    return sizes


def make_mesh(spec: Mapping[str, int], devices: list | None = None) -> jax.sharding.Mesh:
    devices = devices if devices is not None else jax.devices()
    sizes = resolve_mesh_shape(spec, len(devices))
    return jax.make_mesh(
        tuple(sizes.values()), MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES), devices=devices
    )


def spec_for(
    axes: tuple[str | None, ...],
    table: Mapping,
    mesh_shape: Mapping[str, int] | None = None,
    shape: tuple[int, ...] | None = None,
    name: str = "tensor",
    replicate_indivisible: bool = False,
) -> PartitionSpec:
    """The PartitionSpec of logical `axes`; with a shape, checks every split divides its dimension (or, with
    replicate_indivisible, replicates a dimension that does not divide)."""
    entries: list[str | tuple[str, ...] | None] = []
    used: set[str] = set()
    for dim, axis in enumerate(axes):
        targets = tuple(t for t in _as_tuple(table.get(axis) if axis is not None else None) if t not in used)
        used.update(targets)
        if shape is not None and mesh_shape is not None and targets:
            ways = math.prod(mesh_shape[t] for t in targets)
            if shape[dim] % ways and replicate_indivisible:
                used.difference_update(targets)
                targets = ()
            elif shape[dim] % ways:
                raise CwmError(
                    f"cannot shard {name}: dimension {dim} ('{axis}', size {shape[dim]}) does not "
                    f"divide over mesh axis {'x'.join(targets)} ({ways} ways); --config.param_rules.{axis}=None "
                    "replicates it"
                )
        entries.append(None if not targets else targets[0] if len(targets) == 1 else targets)
    return PartitionSpec(*entries)


def param_shardings(
    abstract_params, mesh: jax.sharding.Mesh, rules: ShardingRules, replicate_indivisible: bool = False
):
    """NamedShardings for a model's parameter state (from nnx.split / nnx.state), as a pure dict; a
    dimension a rule cannot divide is an error, or replicated with replicate_indivisible (a sampler's
    layout, where replication only costs memory)."""
    mesh_shape = dict(mesh.shape)
    out: dict = {}  # nested like the parameter state
    for path, variable in nnx.to_flat_state(abstract_params):
        axes = variable.get_metadata().get("logical_axes")
        name = "/".join(map(str, path))
        spec = spec_for(axes, rules.params, mesh_shape, variable.shape, f"parameter '{name}'", replicate_indivisible)
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = NamedSharding(mesh, spec)
    return out


def load_shardings(abstract_params, mesh: jax.sharding.Mesh | None, rules: ShardingRules | None = None):
    """Where a loaded model's parameters go: by `rules` (default: the default param rules) on `mesh` (a
    dimension they cannot divide is an error), or whole on this process's first device without a mesh."""
    if mesh is None:
        mesh = make_mesh({}, jax.local_devices()[:1])
    return param_shardings(abstract_params, mesh, rules or ShardingRules())


_ACTIVE_RULES: contextvars.ContextVar[ShardingRules | None] = contextvars.ContextVar("cwm_rules", default=None)


@contextlib.contextmanager
def activation_rules(rules: ShardingRules):
    """Turns on activation constraints (inside `jax.set_mesh(mesh)`) with these rules."""
    token = _ACTIVE_RULES.set(rules)
    try:
        yield
    finally:
        _ACTIVE_RULES.reset(token)


@contextlib.contextmanager
def on_mesh(mesh: jax.sharding.Mesh, rules: ShardingRules):
    """Runs (and traces) computations on `mesh` with the activation constraints of `rules`."""
    with jax.set_mesh(mesh), activation_rules(rules):
        yield


def active_rules() -> ShardingRules | None:
    """The rules `activation_rules` turned on, if any."""
    return _ACTIVE_RULES.get()


def constrain(x: jax.Array, axes: tuple[str | None, ...]) -> jax.Array:
    """with_sharding_constraint by logical axes; a no-op outside `activation_rules` or without a mesh."""
    rules = active_rules()
    mesh = jax.sharding.get_abstract_mesh()
    if rules is None or mesh.empty:
        return x
    return jax.lax.with_sharding_constraint(x, spec_for(axes, rules.activations))


def data_sharding(mesh: jax.sharding.Mesh, rules: ShardingRules) -> NamedSharding:
    """Where a [batch, length] input array lives."""
    return NamedSharding(mesh, spec_for(("batch", "length"), rules.activations))


def rows_sharding(mesh: jax.sharding.Mesh, rules: ShardingRules) -> NamedSharding:
    """Where an array of rows lives (its first dimension split over the batch axes, the rest replicated)."""
    return NamedSharding(mesh, spec_for(("batch",), rules.activations))


def batch_ways(mesh: jax.sharding.Mesh, rules: ShardingRules) -> int:
    """How many ways the batch's rows are split."""
    return math.prod(dict(mesh.shape)[a] for a in _as_tuple(rules.activations["batch"]))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def local_batch_size(global_batch: int, mesh: jax.sharding.Mesh, rules: ShardingRules) -> int:
    """Rows this process feeds: the global batch over processes (rows are split across data axes)."""
    ways = batch_ways(mesh, rules)
    if global_batch % ways:
        raise config_error("batch_size", f"({global_batch}) must divide over the batch's mesh axes ({ways} ways)")
    return global_batch // jax.process_count()
