"""The RL learner on the trainer's mesh, measured against the trainer in the same run.

1. Learner tokens/s: the GRPO update step (chunked log-probs) against the pretraining step (full logits) on
   the same model, mesh and tokens; both through `make_train_step`, alternated so noise hits both.
2. Weight handover per update: the sampler's params resharded on device (SamplerLayout) against the old
   path (every array to host, one .npz, loaded and placed again), and the Orbax versions that actor
   processes read (written shard by shard, restored into an actor's layout): seconds and bytes through
   the host.

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python bench/rl_learner.py [--models cwm-tiny,cwm-10m]
"""

import argparse
import os
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cwm_jax.model import CwmModel
from cwm_jax.presets import from_preset
from cwm_jax.sharding import ShardingRules, make_mesh, on_mesh, param_shardings, rows_sharding
from cwm_jax.train.optimizer import cwm_optimizer_config, make_optimizer
from cwm_jax.train.state import abstract_model, init_fn, state_shardings
from cwm_jax.train.step import make_train_step, next_token_objective
from cwm_rl.learner import grpo_objective
from cwm_rl.sampler_layout import SamplerLayout
from cwm_rl.weight_channels import WeightVersions

GB = 1e9


def _mesh_arg(text: str) -> dict:
    return {axis: int(size) for axis, size in (part.split("=") for part in text.split(","))}


def _timed(fn) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def learner_vs_trainer(name: str, vocab: int, mesh_spec: dict, rows: int, length: int, repeats: int):
    cfg = from_preset(name, vocab_size=vocab, remat="full")
    mesh, rules = make_mesh(mesh_spec), ShardingRules()
    optimizer, schedule = make_optimizer(cwm_optimizer_config(peak_lr=1e-5, warmup_steps=1), 1000)
    graphdef, _ = abstract_model(cfg)
    tokens = np.random.default_rng(0).integers(0, vocab, (rows, length), dtype=np.int32)
    with on_mesh(mesh, rules):
        shardings = state_shardings(cfg, optimizer, mesh, rules)
        state = jax.jit(init_fn(cfg, optimizer), out_shardings=shardings)(jax.random.PRNGKey(0))
        by_row = rows_sharding(mesh, rules)
        ones = np.ones((rows, length), np.int32)
        train_batch = {
            "tokens": tokens,
            "segment_ids": ones,
            "positions": np.broadcast_to(np.arange(length, dtype=np.int32), (rows, length)).copy(),
            "loss_mask": ones,
        }
        train_batch = {k: jax.device_put(v, by_row) for k, v in train_batch.items()}
        rewards = np.zeros((rows, length - 1), np.float32)
        rewards[:, -1] = np.tile([1.0, -1.0], rows // 2)
        rl_batch = {
            "tokens": tokens,
            "segments": ones,
            "mask": np.ones((rows, length - 1), np.float32),
            "old_logp": np.full((rows, length - 1), -np.log(vocab), np.float32),
            "rewards": rewards,
            "trained": np.ones((rows,), np.float32),
        }
        rl_batch = {k: jax.device_put(v, by_row) for k, v in rl_batch.items()}
        objective = grpo_objective(graphdef, 2, 0.2, 0.28, rows * length, False, 0.0, 512)
        steps = {
            "trainer": (jax.jit(make_train_step(graphdef, optimizer, schedule, 1, next_token_objective(0.0))), ()),
            "RL learner": (jax.jit(make_train_step(graphdef, optimizer, schedule, 1, objective)), (None,)),
        }
        batches = {"trainer": train_batch, "RL learner": rl_batch}
        for label, (step, extra) in steps.items():  # compile
            jax.block_until_ready(step(state, batches[label], *extra))
        times: dict[str, list[float]] = {label: [] for label in steps}
        for _ in range(repeats):
            for label, (step, extra) in steps.items():
                times[label].append(_timed(lambda s=step, b=batches[label], e=extra: s(state, b, *e)))
    per_s = {label: rows * length / statistics.median(t) for label, t in times.items()}
    print(
        f"{name} (vocab {vocab:,}, {cfg.param_count() / 1e6:.1f}M params) on {dict(mesh.shape)}, {rows} x {length} "
        f"tokens: trainer {per_s['trainer']:,.0f} tok/s, RL learner {per_s['RL learner']:,.0f} tok/s, "
        f"ratio {per_s['RL learner'] / per_s['trainer']:.2f}x"
    )


def old_npz_handover(layout_f32: SamplerLayout, params, directory: str) -> tuple[float, int]:
    """The path before this change: the sampler's fp32 arrays to host, one .npz, loaded and placed."""
    start = time.perf_counter()
    flat = {}
    for i, leaf in enumerate(jax.tree.leaves(layout_f32.place(params))):
        flat[str(i)] = np.asarray(leaf)
        leaf.delete()  # host RAM here holds 8 simulated devices: one copy of the model at a time
    path = os.path.join(directory, "version.npz")
    np.savez(path, allow_pickle=False, **flat)
    host_bytes = 2 * sum(a.nbytes for a in flat.values())  # out of the devices, and back
    del flat
    with np.load(path) as data:
        loaded = [data[str(i)] for i in range(len(data.files))]
    placed = jax.device_put(jax.tree.unflatten(jax.tree.structure(params), loaded), layout_f32.shardings)
    jax.block_until_ready(placed)
    seconds = time.perf_counter() - start
    os.remove(path)
    return seconds, host_bytes


def handover(name: str, vocab: int, mesh_spec: dict, repeats: int, npz: bool):
    cfg = from_preset(name, vocab_size=vocab)
    rules = ShardingRules()
    abstract = nnx.state(nnx.eval_shape(lambda: CwmModel(cfg, nnx.Rngs(0))), nnx.Param)
    shardings = param_shardings(abstract, make_mesh(mesh_spec), rules)

    # Random values made shard by shard on the host (the model's own init peaks at ~5x the params in host
    # RAM here, too much for 8 simulated devices holding a 1B model).
    def random_leaf(leaf, sharding):
        def shard(index):
            shape = [len(range(*i.indices(n))) for i, n in zip(index, leaf.shape, strict=True)]
            return np.random.default_rng(len(shape)).standard_normal(shape, np.float32) * 0.02

        return jax.make_array_from_callback(leaf.shape, sharding, shard)

    params = jax.tree.map(random_leaf, nnx.to_pure_dict(abstract), shardings)
    model_bytes = sum(x.nbytes for x in jax.tree.leaves(params))
    print(f"\nweight handover: {name} (vocab {vocab:,}, {cfg.param_count() / 1e9:.2f}B params, fp32 learner) ")
    print(f"learner mesh {mesh_spec}, sampler tensor over {jax.device_count()} devices")
    rows = []
    for dtype in ("bfloat16", "float32"):
        layout = SamplerLayout(abstract, {"tensor": -1}, rules, dtype)
        jax.block_until_ready(layout.place(params))  # compile
        with jax.transfer_guard("disallow"):  # proof: no host round trip
            seconds = statistics.median(_timed(lambda sampler=layout: sampler.place(params)) for _ in range(repeats))
        rows.append((f"on-device reshard ({dtype})", seconds, 0))
    layout_f32 = SamplerLayout(abstract, {"tensor": -1}, rules, "float32")
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        if npz:
            rows.append(("old path: .npz (float32)", *old_npz_handover(layout_f32, params, tmp)))
        layout = SamplerLayout(abstract, {"tensor": -1}, rules, "bfloat16")
        versions = WeightVersions(os.path.join(tmp, "versions"))
        sampler = layout.place(params)
        start = time.perf_counter()
        versions.publish(1, sampler)
        written = time.perf_counter() - start
        start = time.perf_counter()
        _, restored = versions.latest(layout.abstract)
        jax.block_until_ready(restored)
        read = time.perf_counter() - start
        version_bytes = sum(x.nbytes for x in jax.tree.leaves(sampler))
        rows.append(("Orbax version (bfloat16): write", written, version_bytes))
        rows.append(("Orbax version (bfloat16): restore", read, version_bytes))
    base = rows[2][1] if npz else float("nan")
    for label, seconds, host_bytes in rows:
        print(f"  {label:<36} {seconds:7.2f} s  {host_bytes / GB:6.2f} GB through the host  {base / seconds:6.1f}x npz")
    print(f"  (the learner's params: {model_bytes / GB:.2f} GB)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="cwm-tiny,cwm-10m")
    parser.add_argument("--vocab", type=int, default=16384, help="proxies' vocabulary (CPU-sized)")
    parser.add_argument("--mesh", default="data=2,fsdp=4", help="the learner's mesh")
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--handover-model", default="cwm-1b")
    parser.add_argument("--handover-vocab", type=int, default=32768, help="the 1B proxy's vocabulary (host RAM)")
    parser.add_argument("--no-npz", action="store_true", help="skip the old path (it needs ~6x the model in RAM)")
    args = parser.parse_args()
    print(f"{jax.device_count()} x {jax.devices()[0].device_kind}")
    for name in filter(None, args.models.split(",")):  # --models "": the handover only
        vocab = 1024 if name == "cwm-tiny" else args.vocab
        learner_vs_trainer(name, vocab, _mesh_arg(args.mesh), args.rows, args.length, args.repeats)
    handover(args.handover_model, args.handover_vocab, _mesh_arg(args.mesh), 3, not args.no_npz)


if __name__ == "__main__":
    jnp.zeros(())  # start the backend before anything is timed
    main()
