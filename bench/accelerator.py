"""Accelerator numbers for the CWM proxies (cwm-1b and cwm-3b by default) in bf16, in one run of under 10
minutes on one H100 or H200:

- versions: Python, jax, jaxlib, flax, optax, numpy, jax's backend, the devices, CUDA / cuDNN where present;
- attention kernels against blockwise: forward + backward (jax.grad of a sum) of one attention call with the
  proxy's heads, on a global (causal) and a local (sliding-window) layer, each kernel's time as a fraction of
  blockwise's, and TFLOP/s as FlashAttention counts them (3.5 x the forward's two matmuls over the keys each
  query sees). GPU: cudnn and pallas_gpu; TPU: splash;
- train step: tokens/s of the jitted update (AdamW, mixed precision: fp32 params, bf16 compute, attention
  "auto") and MFU against the device's vendor dense bf16 peak, named (cwm_jax/train/flops.py; MFU counts
  compute as the CWM paper does);
- rollout engine (what `generate` and RL's rollouts run; random weights in bf16, greedy, no stop tokens):
  prefill tokens/s (prompt tokens over the time in the engine's prefill calls) and decode tokens/s (tokens
  over the time in decode calls with every slot live, so slots waiting for their prompt do not count), with
  the platform's paged kernels (attention "auto") and against blockwise's gather, as a ratio.

Times exclude compilation: each measured function runs first to compile (and jax's compile events during a
timed engine call are subtracted). Train and kernel times are medians. The train step runs data parallel over
every local device (MFU per device); the kernels and the engine run on one.

With the project's environment:

    ./dev setup && .venv/bin/python bench/accelerator.py [--models cwm-1b,cwm-3b] [--seq-len 4096] [--batch 4]

On a machine that already has a CUDA jax (0.10.x, as pinned; flax 0.12.8 needs jax >= 0.10.0), from a
checkout of this repository (the script puts the project's package folders on sys.path itself), install the
rest of what its imports need from wheels, at pyproject.toml's pins, and run it. The line has no jax or
jaxlib: pip keeps the installed CUDA jax, which satisfies flax's requirement.

    pip install flax==0.12.8 optax==0.2.8 orbax-checkpoint==0.12.8 grain==0.2.18 sentencepiece==0.2.3 \
        safetensors==0.8.0 ml-collections==1.1.0
    python bench/accelerator.py

Kernel timings on a CPU would be Pallas interpret mode, not performance numbers, so on a CPU backend the script
stops; `--allow-cpu` runs a smoke test of the rest instead (tiny proxy, small sizes, labelled CPU):

    JAX_PLATFORMS=cpu .venv/bin/python bench/accelerator.py --allow-cpu --models cwm-tiny --seq-len 64 --batch 2 \
        --steps 2
"""

import argparse
import contextlib
import gc
import importlib.metadata
import inspect
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import source_path  # first: the project imports below need its folders on sys.path
from flax import nnx

from cwm_jax.attention import ATTENTION_IMPLS, auto
from cwm_jax.config import ModelConfig
from cwm_jax.engine import steps as engine_steps
from cwm_jax.engine.generate import GenerationSession
from cwm_jax.model import CwmModel
from cwm_jax.presets import from_preset
from cwm_jax.sharding import ShardingRules, data_sharding, make_mesh, on_mesh
from cwm_jax.train.flops import flops_per_token, peak_flops_per_device
from cwm_jax.train.optimizer import cwm_optimizer_config, make_optimizer
from cwm_jax.train.state import abstract_model, create_state, state_shardings
from cwm_jax.train.step import make_train_step, next_token_objective

KERNELS = {"gpu": ("cudnn", "pallas_gpu"), "tpu": ("splash",)}
WARMUP_STEPS = 2  # untimed: compilation, and first-run allocation and autotuning

COMPILE_SECONDS = [0.0]


def _count_compiles(event: str, duration_secs: float, **kwargs: str | int) -> None:
    if event.startswith("/jax/core/compile"):
        COMPILE_SECONDS[0] += duration_secs


jax.monitoring.register_event_duration_secs_listener(_count_compiles)


def main() -> None:
    # Training the 3B proxy wants more of a GPU than jax's default 75% (unless you set it); read when the
    # backend starts, below.
    os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.9")
    args = parse_args()
    started = time.perf_counter()
    backend = jax.default_backend()
    on_cpu = backend == "cpu"
    if on_cpu and not args.allow_cpu:
        raise SystemExit(
            "bench/accelerator.py: jax's backend is cpu. Kernel timings here would be Pallas interpret mode, not "
            "performance numbers; run it on a GPU or TPU (or --allow-cpu --models cwm-tiny for a smoke run of the "
            "train and engine measurements)."
        )
    fill_defaults(args, on_cpu)
    print_versions()
    peak = peak_flops_per_device(args.peak_tflops * 1e12)
    kind = jax.devices()[0].device_kind
    if on_cpu:
        print("\n*** CPU smoke run: these numbers check that the script runs; they are not performance numbers ***")
        print("attention kernels: skipped (the kernels run only on TPU/GPU; elsewhere Pallas interprets them)")
    if peak:
        source = "given by --peak-tflops" if args.peak_tflops else "vendor figure, cwm_jax/train/flops.py"
        peak_name = f"{kind} dense bf16 peak {peak / 1e12:,.0f} TFLOP/s per device ({source})"
    else:
        peak_name = f"no vendor peak for {kind} (--peak-tflops sets one)"
    print(f"MFU against: {peak_name}")
    results = {name: measure_model(name, args, peak, on_cpu) for name in args.models.split(",")}
    print_summary(results, f"bf16 on {jax.device_count()} x {kind} ({backend}{', CPU SMOKE RUN' if on_cpu else ''})")
    print(f"MFU against: {peak_name}")
    print(f"elapsed: {time.perf_counter() - started:.0f} s")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", help="comma-separated presets (default cwm-1b,cwm-3b; cwm-tiny on a CPU)")
    parser.add_argument("--seq-len", type=int, default=4096, help="train step sequence length")
    parser.add_argument("--batch", type=int, default=4, help="train step global batch, in sequences")
    parser.add_argument("--steps", type=int, default=5, help=f"timed train steps (after {WARMUP_STEPS} warm-up)")
    parser.add_argument(
        "--remat", default="auto", help="train step remat: none, full, save_dots, or auto (none, else full if OOM)"
    )
    parser.add_argument("--attention", default="auto", help="train step attention_impl")
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="peak per device for MFU (default: vendor)")
    parser.add_argument("--kernel-seq-len", type=int, default=16384, help="attention timing length (past the window)")
    parser.add_argument("--kernel-batch", type=int, default=1)
    parser.add_argument("--kernel-repeats", type=int, default=10)
    parser.add_argument("--prompts", type=int, help="engine sequences (default 64; 4 on a CPU)")
    parser.add_argument("--prompt-len", type=int, help="engine prefill prompt tokens (default 1024; 32 on a CPU)")
    parser.add_argument("--new-tokens", type=int, help="engine decode tokens per sequence (default 256; 16 on a CPU)")
    parser.add_argument(
        "--decode-prompt-len",
        type=int,
        help="prompt tokens of the decode run (default: one prefill chunk, so every slot is soon live)",
    )
    parser.add_argument("--prefill-chunk", type=int, default=64, help="engine prefill chunk (generate's default)")
    parser.add_argument("--allow-cpu", action="store_true", help="smoke-run train and engine on a CPU backend")
    return parser.parse_args()


def fill_defaults(args: argparse.Namespace, on_cpu: bool) -> None:
    """Sizes left unset: an accelerator's, or a CPU smoke run's."""
    defaults = dict(models="cwm-1b,cwm-3b", prompts=64, prompt_len=1024, new_tokens=256)
    if on_cpu:
        defaults = dict(models="cwm-tiny", prompts=4, prompt_len=32, new_tokens=16)
    for field, value in defaults.items():
        if getattr(args, field) is None:
            setattr(args, field, value)
    if args.decode_prompt_len is None:
        args.decode_prompt_len = min(args.prefill_chunk, args.prompt_len)


def measure_model(name: str, args: argparse.Namespace, peak: float | None, on_cpu: bool) -> dict[str, str]:
    """One proxy's measurements, as summary cells; one that fails is reported and the others still run."""
    print(f"\n== {name}")
    started = time.perf_counter()
    row: dict[str, str] = {}
    if not on_cpu:
        attempt(f"{name} kernels", row, lambda: kernel_timings(name, args))
    attempt(f"{name} train step", row, lambda: train_throughput(name, args, peak))
    attempt(f"{name} engine", row, lambda: engine_against_blockwise(name, args))
    print(f"  ({name}: {time.perf_counter() - started:.0f} s)")
    return row


def attempt(what: str, row: dict[str, str], measure: Callable[[], dict[str, str]]) -> None:
    """Adds a measurement's cells to row; a failure (out of memory, a kernel this device lacks) is printed."""
    started = time.perf_counter()
    try:
        row.update(measure())
    except Exception as error:  # the other measurements still run
        hint = " (out of memory: try --remat full or a smaller --batch)" if "RESOURCE_EXHAUSTED" in str(error) else ""
        print(f"  {what} FAILED{hint}: {type(error).__name__}: {_one_line(str(error))[:300]}")
    print(f"  ({what}: {time.perf_counter() - started:.0f} s with compiling)")


# Versions.


def print_versions() -> None:
    device = jax.devices()[0]
    print("== versions")
    print(f"  python           {platform.python_version()} ({platform.platform()})")
    print(f"  cwm-jax source   {source_path.REPO}")
    for package in ("jax", "jaxlib", "flax", "optax", "numpy", "orbax-checkpoint"):
        print(f"  {package:<16} {_version(package)}")
    plugins = [
        f"{p} {_version(p)}"
        for p in ("jax-cuda12-plugin", "jax-cuda12-pjrt", "jax-cuda13-plugin", "jax-cuda13-pjrt", "libtpu")
        if _version(p) != "not installed"
    ]
    if plugins:
        print(f"  plugins          {', '.join(plugins)}")
    print(f"  backend          {jax.default_backend()} ({_one_line(getattr(device.client, 'platform_version', ''))})")
    print(f"  devices          {jax.device_count()} x {device.device_kind} ({jax.process_count()} process(es))")
    for line in cuda_versions():
        print(f"  {line}")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def cuda_versions() -> list[str]:
    """CUDA runtime, cuDNN and driver versions from jax's CUDA plugin (and nvidia-smi), where there are any."""
    lines = []
    try:
        from jax._src.lib import cuda_versions as versions  # jax's own record; absent without a CUDA plugin

        if versions is not None:
            for label, getter in (
                ("cuda runtime", "cuda_runtime_get_version"),
                ("cudnn", "cudnn_get_version"),
                ("cuda driver", "cuda_driver_get_version"),
            ):
                with contextlib.suppress(Exception):
                    lines.append(f"{label:<16} {getattr(versions, getter)()}")
    except Exception:  # a private module: its absence only means fewer lines
        pass
    with contextlib.suppress(Exception):
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        lines.append(f"{'nvidia-smi':<16} driver, memory: {smi.stdout.splitlines()[0].strip()}")
    return lines


# Attention kernels against blockwise.


def kernel_timings(name: str, args: argparse.Namespace) -> dict[str, str]:
    cfg = from_preset(name)
    batch, length = args.kernel_batch, args.kernel_seq_len
    kernels = KERNELS[jax.default_backend()]
    layers: list[tuple[str, int | None]] = [("global", None)]
    if cfg.sliding_window < length:
        layers.append((f"local (window {cfg.sliding_window})", cfg.sliding_window))
    else:
        print(f"  (window {cfg.sliding_window} >= {length} tokens: local layers mask as global ones; timed once)")
    print(
        f"  attention forward+backward, {cfg.n_heads} query / {cfg.n_kv_heads} KV heads x {cfg.head_dim}, "
        f"{batch} x {length} tokens, bf16, one document per row"
    )
    print(f"  {'layer':<22} {'attention':<12} {'ms':>9} {'TFLOP/s':>9} {'time / blockwise':>17}")
    ratios: dict[str, str] = {}
    for layer, window in layers:
        useful = attention_flops(cfg, batch, length, window)
        baseline = time_attention("blockwise", cfg, batch, length, window, args.kernel_repeats)
        print(f"  {layer:<22} {'blockwise':<12} {baseline * 1e3:9.2f} {useful / baseline / 1e12:9.1f} {'1.00':>17}")
        for kernel in kernels:
            try:
                seconds = time_attention(kernel, cfg, batch, length, window, args.kernel_repeats)
            except Exception as error:  # a kernel this device cannot run is reported
                print(f"  {layer:<22} {kernel:<12} FAILED: {type(error).__name__}: {str(error)[:200]}")
                ratios[f"{kernel} {layer.split()[0]}"] = "failed"
                continue
            ratio = seconds / baseline
            ratios[f"{kernel} {layer.split()[0]}"] = f"{ratio:.2f}"
            print(f"  {layer:<22} {kernel:<12} {seconds * 1e3:9.2f} {useful / seconds / 1e12:9.1f} {ratio:17.2f}")
    return {f"{k} / blockwise": v for k, v in ratios.items()}


def attention_flops(cfg: ModelConfig, batch: int, length: int, window: int | None) -> float:
    """Forward + backward FLOPs as FlashAttention counts them: 3.5 x the forward's QK^T and PV matmuls over the
    keys each query sees (causal, within the window)."""
    w = min(window or length, length)
    keys = w * (w + 1) // 2 + (length - w) * w
    return 3.5 * 4 * batch * cfg.n_heads * cfg.head_dim * keys


def time_attention(impl: str, cfg: ModelConfig, batch: int, length: int, window: int | None, repeats: int) -> float:
    """Median seconds of jax.grad of sum(attention) with respect to q, k and v."""
    attend = ATTENTION_IMPLS[impl]
    kq, kk, kv = jax.random.split(jax.random.key(0), 3)
    q = jax.random.normal(kq, (batch, length, cfg.n_heads, cfg.head_dim), jnp.bfloat16)
    k = jax.random.normal(kk, (batch, length, cfg.n_kv_heads, cfg.head_dim), jnp.bfloat16)
    v = jax.random.normal(kv, (batch, length, cfg.n_kv_heads, cfg.head_dim), jnp.bfloat16)
    positions = jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), (batch, length))
    segments = jnp.ones((batch, length), jnp.int32)

    def summed(q, k, v, positions, segments):
        out = attend(
            q,
            k,
            v,
            q_positions=positions,
            kv_positions=positions,
            q_segments=segments,
            kv_segments=segments,
            window=window,
            block_size=cfg.attention_block_size,
        )
        return jnp.sum(out.astype(jnp.float32))

    grads = jax.jit(jax.grad(summed, argnums=(0, 1, 2)))
    return median_seconds(lambda: grads(q, k, v, positions, segments), repeats)


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    jax.block_until_ready(fn())  # compiles
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# Train step.


def train_throughput(name: str, args: argparse.Namespace, peak: float | None) -> dict[str, str]:
    """The train step's tokens/s and MFU; remat "auto" tries none first, then full if that runs out of memory."""
    *fallible, last = ("none", "full") if args.remat == "auto" else (args.remat,)
    for remat in fallible:
        try:
            return time_train_step(train_config(name, args, remat), args, peak)
        except Exception as error:
            if "RESOURCE_EXHAUSTED" not in str(error):
                raise
            print(f"  train step: out of memory with remat {remat}; trying the next policy")
        gc.collect()  # frees the failed try's state, which its traceback held
    return time_train_step(train_config(name, args, last), args, peak)


def train_config(name: str, args: argparse.Namespace, remat: str) -> ModelConfig:
    return from_preset(name, dtype="bfloat16", attention_impl=args.attention, remat=remat)


def time_train_step(cfg: ModelConfig, args: argparse.Namespace, peak: float | None) -> dict[str, str]:
    attention = auto.choice(jax.default_backend())[0] if cfg.attention_impl == "auto" else cfg.attention_impl
    mesh = make_mesh({"data": -1})
    rules = ShardingRules()
    optimizer, schedule = make_optimizer(cwm_optimizer_config(warmup_steps=1), WARMUP_STEPS + args.steps)
    with on_mesh(mesh, rules):
        shardings = state_shardings(cfg, optimizer, mesh, rules)
        state = create_state(cfg, optimizer, shardings, seed=0)
        graphdef, _ = abstract_model(cfg)
        batch_sharding = data_sharding(mesh, rules)
        step = jax.jit(
            make_train_step(graphdef, optimizer, schedule, 1, next_token_objective(0.0)),
            in_shardings=(shardings, batch_sharding),
            out_shardings=(shardings, None),
            donate_argnums=0,
        )
        batch = jax.device_put(synthetic_batch(cfg.vocab_size, args.batch, args.seq_len), batch_sharding)
        times = []
        for _ in range(WARMUP_STEPS + args.steps):
            start = time.perf_counter()
            state, metrics = step(state, batch)
            jax.block_until_ready((state, metrics))
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times[WARMUP_STEPS:])
    tokens_per_s = args.batch * args.seq_len / seconds
    mfu = tokens_per_s * flops_per_token(cfg, args.seq_len) / (peak * jax.device_count()) if peak else None
    mfu_text = f"{mfu:.1%}" if mfu is not None else "n/a"
    print(
        f"  train step: {cfg.param_count() / 1e6:,.0f}M params, batch {args.batch} x {args.seq_len}, attention "
        f"{cfg.attention_impl} -> {attention}, remat {cfg.remat}, fp32 params / bf16 compute, AdamW"
    )
    print(
        f"  train step: {seconds * 1e3:,.1f} ms (median of {args.steps}), {tokens_per_s:,.0f} tokens/s, "
        f"MFU {mfu_text}, loss {float(metrics['loss']):.3f}"
    )
    return {"train tokens/s": f"{tokens_per_s:,.0f}", "MFU": mfu_text, "remat": cfg.remat}


def synthetic_batch(vocab_size: int, batch: int, seq_len: int) -> dict[str, np.ndarray]:
    """Random tokens, one document per row (what the trainer's synthetic data gives)."""
    shape = (batch, seq_len)
    return {
        "tokens": np.random.default_rng(0).integers(0, vocab_size, shape, dtype=np.int32),
        "segment_ids": np.ones(shape, np.int32),
        "positions": np.broadcast_to(np.arange(seq_len, dtype=np.int32), shape).copy(),
        "loss_mask": np.ones(shape, np.int32),
    }


# Rollout engine.


def engine_against_blockwise(name: str, args: argparse.Namespace) -> dict[str, str]:
    """The engine with the platform's paged kernels (attention auto) and with blockwise's gather, same weights."""
    kernel = engine_throughput(name, args, args.attention)
    if args.attention == "blockwise":
        return kernel
    gather = engine_throughput(name, args, "blockwise")
    cells = dict(kernel)
    for what in ("prefill tokens/s", "decode tokens/s"):
        ratio = _rate(kernel[what]) / _rate(gather[what])
        cells[f"engine {what.split()[0]} / blockwise"] = f"{ratio:.2f}"
        print(f"  engine {what}: {args.attention} {kernel[what]} vs blockwise {gather[what]}: {ratio:.2f}x")
    return cells


def _rate(cell: str) -> float:
    return float(cell.replace(",", ""))


def engine_throughput(name: str, args: argparse.Namespace, attention: str) -> dict[str, str]:
    cfg = from_preset(name, dtype="bfloat16", param_dtype="bfloat16", attention_impl=attention)
    model = CwmModel(cfg, nnx.Rngs(0))
    rng = np.random.default_rng(0)
    # Distinct prompts: identical ones would share one prefill.
    long_prompts = rng.integers(3, cfg.vocab_size, (args.prompts, args.prompt_len)).tolist()
    short_prompts = rng.integers(3, cfg.vocab_size, (args.prompts, args.decode_prompt_len)).tolist()
    # One max_len for both runs: the same engine shapes, so one warm-up compiles both.
    with GenerationSession(max_len=args.prompt_len + args.new_tokens, keep=False) as session:

        def run(prompts: list[list[int]], new_tokens: int) -> EngineCalls:
            with timed_engine_calls() as calls:
                session(model, prompts, new_tokens, prefill_chunk=args.prefill_chunk)
            return calls

        session(model, long_prompts, 1, prefill_chunk=args.prefill_chunk)  # compiles prefill and decode
        assert session.engine is not None
        config = session.engine.config  # what generate chose for these requests; both runs keep this engine
        prefill, decode = run(long_prompts, 1), run(short_prompts, args.new_tokens)
    prefill_rate = args.prompts * args.prompt_len / sum(prefill.prefill_seconds)
    full = [(s, n) for s, n, all_live in decode.decode if all_live]
    which = "calls with every slot live"
    if not full:
        full, which = [(s, n) for s, n, _ in decode.decode], "all calls: none had every slot live"
    decode_rate = sum(n for _, n in full) / sum(s for s, _ in full)
    print(f"  engine with attention {attention}:")
    print(
        f"  engine: {config.slots} slots, prefill calls of {config.prefill_rows} rows x {config.prefill_chunk} tokens, "
        f"decode calls of {config.decode_steps} tokens per slot, max_len {config.max_len}, bf16 weights"
    )
    print(
        f"  engine prefill: {args.prompts} prompts x {args.prompt_len} tokens: {prefill_rate:,.0f} tokens/s "
        f"({len(prefill.prefill_seconds)} calls)"
    )
    print(
        f"  engine decode: {args.prompts} sequences x {args.new_tokens} tokens after {args.decode_prompt_len}-token "
        f"prompts: {decode_rate:,.0f} tokens/s ({which})"
    )
    return {"prefill tokens/s": f"{prefill_rate:,.0f}", "decode tokens/s": f"{decode_rate:,.0f}"}


class EngineCalls:
    def __init__(self) -> None:
        self.prefill_seconds: list[float] = []
        self.decode: list[tuple[float, int, bool]] = []  # (seconds, tokens written, every slot live)


@contextlib.contextmanager
def timed_engine_calls() -> Iterator[EngineCalls]:
    """Times the engine's compiled prefill and decode calls. The engine looks them up on its steps module at
    each call, so wrapping the module's functions sees every call; each wrapped call waits for its results,
    and compile time inside it is subtracted."""
    calls = EngineCalls()
    prefill, decode = engine_steps.prefill, engine_steps.decode
    decode_signature = inspect.signature(decode)

    def timed(fn: Callable, *args: Any, **kwargs: Any) -> tuple[Any, float]:
        compiled, start = COMPILE_SECONDS[0], time.perf_counter()
        out = jax.block_until_ready(fn(*args, **kwargs))
        return out, time.perf_counter() - start - (COMPILE_SECONDS[0] - compiled)

    def timed_prefill(*args: Any, **kwargs: Any) -> Any:
        out, seconds = timed(prefill, *args, **kwargs)
        calls.prefill_seconds.append(seconds)
        return out

    def timed_decode(*args: Any, **kwargs: Any) -> Any:
        bound = decode_signature.bind(*args, **kwargs).arguments
        counts_before, all_live = np.array(bound["counts"]), not np.any(bound["done"])
        out, seconds = timed(decode, *args, **kwargs)
        counts_after = np.asarray(jax.device_get(out[4]))
        calls.decode.append((seconds, int(np.sum(counts_after - counts_before)), bool(all_live)))
        return out

    with (
        mock.patch.object(engine_steps, "prefill", timed_prefill),
        mock.patch.object(engine_steps, "decode", timed_decode),
    ):
        yield calls


# Summary.


def print_summary(results: dict[str, dict[str, str]], title: str) -> None:
    columns = list(dict.fromkeys(column for row in results.values() for column in row))
    widths = {c: max(len(c), *(len(row.get(c, "")) for row in results.values())) for c in columns}
    name_width = max(5, *(len(name) for name in results))
    print(f"\n== summary: {title}")
    print("  " + " | ".join([f"{'model':<{name_width}}", *(f"{c:>{widths[c]}}" for c in columns)]))
    for name, row in results.items():
        cells = [f"{row.get(c, '-'):>{widths[c]}}" for c in columns]
        print("  " + " | ".join([f"{name:<{name_width}}", *cells]))


if __name__ == "__main__":
    main()
