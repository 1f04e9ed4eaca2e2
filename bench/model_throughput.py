"""Forward+backward tokens/s of a ~20M-parameter CWM proxy: cwm_jax vs transformers' CwmForCausalLM.

Both run in this process on the same shape, batch and weights; the ratio is what to read (absolute times
on shared machines are noisy). Also reports compile times, including AOT compiles of the full cwm-32b
train step (no weights are allocated) with the layer scan on and off.

    python bench/model_throughput.py [--batch 8] [--seq-len 256] [--iters 5]
"""

import argparse
import os
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx
from transformers import CwmForCausalLM

import cwm_jax
from cwm_jax.loss import next_token_loss

if "JAX_PLATFORMS" not in os.environ:  # a CPU comparison unless you choose otherwise
    jax.config.update("jax_platforms", "cpu")

jax.config.update("jax_enable_compilation_cache", False)  # compile times below are real compiles


def jax_train_fn(graphdef):
    def loss(state, tokens):
        total, count = next_token_loss(nnx.merge(graphdef, state)(tokens), tokens)
        return total / count

    return jax.jit(jax.value_and_grad(loss))


def time_jax(model, tokens, iters):
    graphdef, state = nnx.split(model)
    start = time.perf_counter()
    step = jax_train_fn(graphdef).lower(state, tokens).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(step(state, tokens))
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        jax.block_until_ready(step(state, tokens))
        times.append(time.perf_counter() - start)
    return statistics.median(times), compile_s


def time_torch(model, tokens, iters):
    x = torch.as_tensor(np.asarray(tokens), dtype=torch.long)

    def step():
        model.zero_grad(set_to_none=True)
        logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        loss.backward()

    step()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def aot_compile_seconds(cfg, batch, seq_len):
    abstract = nnx.eval_shape(lambda: cwm_jax.CwmModel(cfg, nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    tokens = jax.ShapeDtypeStruct((batch, seq_len), jnp.int32)
    start = time.perf_counter()
    jax_train_fn(graphdef).lower(state, tokens).compile()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--skip-32b", action="store_true")
    args = parser.parse_args()

    # cwm-10m's shape (d 384, 4 layers, 6/1 heads, 3:1 local:global) with a 16k vocab: 20.2M parameters.
    cfg = cwm_jax.from_preset("cwm-10m", vocab_size=16384, sliding_window=128, max_seq_len=4096)
    source = cwm_jax.CwmModel(cfg, nnx.Rngs(0))
    with tempfile.TemporaryDirectory() as path:
        cwm_jax.to_hf(source, path)
        torch_model = CwmForCausalLM.from_pretrained(path).train()
        models = {
            impl: cwm_jax.from_hf(path, attention_impl=impl, attention_block_size=64)
            for impl in ("reference", "blockwise")
        }
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, cfg.vocab_size, (args.batch, args.seq_len)), jnp.int32)
    n_tokens = args.batch * args.seq_len
    print(
        f"model: {cfg.param_count() / 1e6:.1f}M parameters, batch {args.batch} x {args.seq_len}, "
        f"{jax.default_backend()} x{jax.device_count()}, torch threads {torch.get_num_threads()}, "
        f"HF attention '{torch_model.config._attn_implementation}'"
    )

    torch_s = time_torch(torch_model, tokens, args.iters)
    print(f"transformers      fwd+bwd {n_tokens / torch_s:10,.0f} tokens/s")
    for impl, model in models.items():
        jax_s, compile_s = time_jax(model, tokens, args.iters)
        print(
            f"cwm_jax {impl:<9} fwd+bwd {n_tokens / jax_s:10,.0f} tokens/s  ratio vs transformers "
            f"{torch_s / jax_s:5.2f}x  (compile {compile_s:.1f}s)"
        )

    if not args.skip_32b:
        big = cwm_jax.from_preset("cwm-32b", dtype="bfloat16", remat="full")
        for scan in (True, False):
            seconds = aot_compile_seconds(big.replace(scan_layers=scan), 1, 2048)
            print(f"cwm-32b train step AOT compile (1 x 2048, scan_layers={scan}): {seconds:.1f}s")


if __name__ == "__main__":
    main()
