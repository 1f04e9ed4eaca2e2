"""Prefill and decode tokens/s of cwm_jax generate (cache attention `reference` and `blockwise`) against
transformers' generate (same shape, weights, batch and lengths, greedy, in this process); the KV-cache bytes
per token of cwm-32b; and the memory one prefill chunk's attention over a 131k-token cwm-32b cache needs.

    python bench/sampling_throughput.py [--batch 4] [--prompt 256] [--new 64]
"""

import argparse
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx
from transformers import CwmForCausalLM

import cwm_jax
from cwm_jax.attention import blockwise, reference
from cwm_jax.kv_cache import cache_bytes_per_token

if "JAX_PLATFORMS" not in os.environ:  # a CPU comparison unless you choose otherwise
    jax.config.update("jax_platforms", "cpu")


def timed(fn, repeats=2):
    fn()  # compile / warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--prompt", type=int, default=256)
    parser.add_argument("--new", type=int, default=64)
    args = parser.parse_args()
    cfg = cwm_jax.from_preset("cwm-10m", vocab_size=16384, sliding_window=128, max_seq_len=4096)
    model = cwm_jax.CwmModel(cfg, nnx.Rngs(0))
    with tempfile.TemporaryDirectory() as path:
        cwm_jax.to_hf(model, path)
        hf = CwmForCausalLM.from_pretrained(path).eval()
    prompts = np.random.default_rng(0).integers(3, cfg.vocab_size, (args.batch, args.prompt))
    ours = {
        n: timed(lambda n=n: cwm_jax.generate(model, prompts.tolist(), n, prefill_chunk=256)) for n in (1, args.new)
    }
    graphdef, state = nnx.split(model)
    blocked_cfg = cfg.replace(attention_impl="blockwise", attention_block_size=128)
    blocked = nnx.merge(nnx.split(nnx.eval_shape(lambda: cwm_jax.CwmModel(blocked_cfg, nnx.Rngs(0))))[0], state)
    ours_blocked = {
        n: timed(lambda n=n: cwm_jax.generate(blocked, prompts.tolist(), n, prefill_chunk=256)) for n in (1, args.new)
    }
    ids = torch.as_tensor(prompts)

    def hf_generate(n):
        with torch.no_grad():
            hf.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=0)

    theirs = {n: timed(lambda n=n: hf_generate(n)) for n in (1, args.new)}
    report = {}
    for name, t in (("cwm_jax", ours), ("  blockwise", ours_blocked), ("transformers", theirs)):
        prefill = args.batch * args.prompt / t[1]
        decode = args.batch * (args.new - 1) / (t[args.new] - t[1])
        report[name] = (prefill, decode)
        print(f"{name:<13} prefill {prefill:10,.0f} tokens/s   decode {decode:8,.0f} tokens/s")
    print(
        f"ratio cwm_jax / transformers: prefill {report['cwm_jax'][0] / report['transformers'][0]:.2f}x, "
        f"decode {report['cwm_jax'][1] / report['transformers'][1]:.2f}x "
        f"({cfg.param_count() / 1e6:.1f}M params, batch {args.batch}, prompt {args.prompt}, {args.new} new tokens); "
        f"blockwise cache: prefill {report['  blockwise'][0] / report['transformers'][0]:.2f}x, "
        f"decode {report['  blockwise'][1] / report['transformers'][1]:.2f}x"
    )
    big = cwm_jax.from_preset("cwm-32b")
    ring, full = cache_bytes_per_token(big, 131072), cache_bytes_per_token(big, 131072, ring=False)
    print(
        f"cwm-32b KV cache at 131,072 tokens (bf16): {ring / 1024:.1f} KiB/token with local ring buffers vs "
        f"{full / 1024:.1f} KiB/token if every layer kept the full context ({ring * 131072 / 2**30:.1f} GiB vs "
        f"{full * 131072 / 2**30:.1f} GiB per sequence)"
    )
    q = jax.ShapeDtypeStruct((1, 512, big.n_heads, big.head_dim), jnp.bfloat16)
    cache = jax.ShapeDtypeStruct((1, 131072, big.n_kv_heads, big.head_dim), jnp.bfloat16)
    positions, cache_positions = (jax.ShapeDtypeStruct(s, jnp.int32) for s in ((1, 512), (1, 131072)))

    def ones(p):
        return jnp.ones(p.shape, jnp.int32)

    impls = {
        "reference": lambda q, k, v, p, kp: reference.attend(
            q, k, v, q_positions=p, kv_positions=kp, q_segments=ones(p), kv_segments=ones(kp), window=None, block_size=0
        ),
        "blockwise": lambda q, k, v, p, kp: blockwise.attend_cache(
            q, k, v, q_positions=p, kv_positions=kp, window=None, block_size=512
        ),
    }

    def temp_gib(fn) -> float:
        analysis = jax.jit(fn).lower(q, cache, cache, positions, cache_positions).compile().memory_analysis()
        if analysis is None:
            raise SystemExit(f"the {jax.default_backend()} compiler reports no memory analysis")
        return analysis.temp_size_in_bytes / 2**30

    temps = {name: temp_gib(fn) for name, fn in impls.items()}
    print(
        f"cwm-32b global layer, a 512-token prefill chunk over a 131,072-token cache: temporaries "
        f"reference {temps['reference']:.2f} GiB, blockwise {temps['blockwise']:.3f} GiB "
        f"({temps['blockwise'] / temps['reference']:.3f}x)"
    )


if __name__ == "__main__":
    main()
