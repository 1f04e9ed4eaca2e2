"""Training tokens/s and MFU of CWM proxies on this machine, through the real trainer (`train`).

MFU counts compute as the CWM paper does (6 x non-embedding params + attention; cwm_jax/train/flops.py).
On a CPU there is no vendor peak, so the peak is measured in this run: the best fp32 matmul FLOP/s of a
large square GEMM. On accelerators the device's bf16 peak is used.

    python bench/train_throughput.py [--models cwm-10m,cwm-150m] [--steps 6]
"""

import argparse
import json
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import ml_collections

from cwm_common.experiment_config import load_config
from cwm_jax.presets import preset_fields
from cwm_jax.train.flops import peak_flops_per_device
from cwm_jax.train.loop import train


def measured_matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = min(_timed(lambda: f(a).block_until_ready()) for _ in range(repeats))
    return 2 * n**3 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="cwm-10m,cwm-150m")
    parser.add_argument("--vocab", type=int, default=16384, help="proxies' vocabulary (CPU-sized)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()
    peak = peak_flops_per_device() or measured_matmul_peak()
    print(
        f"{jax.device_count()} x {jax.devices()[0].device_kind}; peak {peak / 1e12:.3f} TFLOP/s per device "
        f"({'vendor' if peak_flops_per_device() else 'measured fp32 GEMM'})"
    )
    for name in args.models.split(","):
        config = load_config(
            "configs/tiny.py",
            [
                "--config.data.kind=synthetic",
                f"--config.steps={args.steps}",
                f"--config.batch_size={args.batch}",
                f"--config.data.seq_len={args.seq_len}",
                "--config.checkpoint_every=100000",
                "--config.log_every=100000",
                f"--config.peak_flops_per_device={peak}",
                "--config.optimizer.warmup_steps=1",
            ],
        )
        config.model = ml_collections.ConfigDict(preset_fields(name))
        config.model.vocab_size, config.model.dtype = args.vocab, args.dtype
        with tempfile.TemporaryDirectory() as workdir:
            train(config, workdir, log=lambda m: None)
            with open(f"{workdir}/metrics.jsonl") as f:
                records = [json.loads(line) for line in f][2:]  # steps 1-2 include compilation
        tokens = statistics.median(r["tokens_per_s"] for r in records)
        mfu = statistics.median(r["mfu"] for r in records)
        print(
            f"{name} (vocab {args.vocab}, batch {args.batch} x {args.seq_len}): {tokens:,.0f} tokens/s, MFU {mfu:.1%}"
        )


if __name__ == "__main__":
    main()
