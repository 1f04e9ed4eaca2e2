"""The training state (params, optimizer state, step, rng) as pure pytrees, created directly on the mesh."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from cwm_jax.config import ModelConfig
from cwm_jax.model import CwmModel
from cwm_jax.sharding import ShardingRules, param_shardings, replicated


def abstract_model(cfg: ModelConfig):
    """(graphdef, abstract parameter state) of a model, with no arrays allocated."""
    return nnx.split(nnx.eval_shape(lambda: CwmModel(cfg, nnx.Rngs(0))))


def init_fn(cfg: ModelConfig, optimizer: optax.GradientTransformation):
    def init(rng):
        model = CwmModel(cfg, nnx.Rngs(params=rng))
        params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
        return {"params": params, "opt_state": optimizer.init(params), "step": jnp.zeros((), jnp.int32), "rng": rng}

    return init


def state_shardings(cfg: ModelConfig, optimizer: optax.GradientTransformation, mesh, rules: ShardingRules):
    """Shardings of every state leaf: parameters by the rules, optimizer moments like their parameters."""
    _, abstract_params = abstract_model(cfg)
    params = param_shardings(abstract_params, mesh, rules)
    abstract = jax.eval_shape(init_fn(cfg, optimizer), jax.random.PRNGKey(0))
    opt_state = optax.tree_map_params(
        optimizer,
        lambda _, sharding: sharding,
        abstract["opt_state"],
        params,
        transform_non_params=lambda _: replicated(mesh),
    )
    return {"params": params, "opt_state": opt_state, "step": replicated(mesh), "rng": replicated(mesh)}


def create_state(cfg: ModelConfig, optimizer, shardings, seed: int):
    """A fresh state, each leaf created where its sharding puts it (nothing is built whole on one host)."""
    return jax.jit(init_fn(cfg, optimizer), out_shardings=shardings)(jax.random.PRNGKey(seed))


def state_from_params(params, optimizer, shardings, seed: int):
    """A fresh state around existing params (a policy to fine-tune): each device takes its slice of them, the
    optimizer state is created on the mesh. Params every process holds whole pass through host memory one
    tensor at a time; params already spread over processes (loaded onto the mesh) are resharded on device."""

    def place(x, sharding):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return jax.device_put(x, sharding)
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    params = jax.tree.map(place, params, shardings["params"])
    opt_state = jax.jit(optimizer.init, out_shardings=shardings["opt_state"])(params)
    step = jax.device_put(jnp.zeros((), jnp.int32), shardings["step"])
    return {
        "params": params,
        "opt_state": opt_state,
        "step": step,
        "rng": jax.device_put(jax.random.PRNGKey(seed), shardings["rng"]),
    }


def abstract_state(cfg: ModelConfig, optimizer, shardings):
    """ShapeDtypeStructs with shardings: the restore target for a checkpoint, on this mesh."""
    abstract = jax.eval_shape(init_fn(cfg, optimizer), jax.random.PRNGKey(0))
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)
