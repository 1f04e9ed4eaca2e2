"""The embedded main job (for now): build a preset model, run a forward, train a few steps on random tokens.

The batch is fixed, so the model can memorize it and the loss visibly falls below ln(vocab).
"""

import math
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from cwm_jax.config import FULL, from_preset
from cwm_jax.loss import next_token_loss
from cwm_jax.model import CwmModel


def run_demo(preset: str = "cwm-tiny", steps: int = 20, batch: int = 8, seq_len: int = 128, seed: int = 0,
             learning_rate: float = 3e-3, log: Callable[[str], None] = print) -> dict:
    cfg = from_preset(preset)
    n_global = cfg.layer_types.count(FULL)
    log(f"model {preset}: {cfg.param_count():,} parameters ({cfg.non_embedding_params():,} non-embedding), "
        f"{cfg.n_layers} layers ({n_global} global, {cfg.n_layers - n_global} local with window "
        f"{cfg.sliding_window}), vocab {cfg.vocab_size}, {jax.device_count()} {jax.default_backend()} device(s)")
    model = CwmModel(cfg, nnx.Rngs(seed))
    tokens = jnp.asarray(np.random.default_rng(seed).integers(0, cfg.vocab_size, (batch, seq_len)), jnp.int32)

    graphdef, params = nnx.split(model)
    optimizer = optax.chain(optax.clip_by_global_norm(1.0),
                            optax.adamw(learning_rate, b1=0.9, b2=0.95, weight_decay=0.1))
    opt_state = optimizer.init(params)

    def loss_of(params):
        total, count = next_token_loss(nnx.merge(graphdef, params)(tokens), tokens)
        return total / count

    @jax.jit
    def train_step(params, opt_state):
        loss, grads = jax.value_and_grad(loss_of)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    logits = jax.jit(lambda p: nnx.merge(graphdef, p)(tokens))(params)
    total, count = next_token_loss(logits, tokens)
    log(f"forward: tokens {tuple(tokens.shape)} -> logits {tuple(logits.shape)} {logits.dtype}; "
        f"loss {float(total / count):.4f} (ln vocab = {math.log(cfg.vocab_size):.4f})")

    start = time.perf_counter()
    compiled = train_step.lower(params, opt_state).compile()
    compile_s = time.perf_counter() - start
    log(f"train step compiled in {compile_s:.1f}s")

    losses, start = [], time.perf_counter()
    for step in range(1, steps + 1):
        params, opt_state, loss = compiled(params, opt_state)
        losses.append(float(loss))  # float() waits for the step, so the clock below is honest
        elapsed = time.perf_counter() - start
        log(f"step {step:3d}/{steps}  loss {losses[-1]:.4f}  {step * tokens.size / elapsed:,.0f} tokens/s")
    tokens_per_s = steps * tokens.size / (time.perf_counter() - start)
    log(f"done: loss {losses[0]:.4f} -> {losses[-1]:.4f}, {tokens_per_s:,.0f} tokens/s")
    return {"losses": losses, "tokens_per_s": tokens_per_s, "compile_s": compile_s}
