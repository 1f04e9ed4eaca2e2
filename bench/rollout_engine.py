"""Useful tokens/s of the rollout engine against the static-batch `generate` it replaced and against
transformers' generate, in the same run, on two workloads with the same weights and lengths (greedy, no stop
tokens: every request generates exactly its limit, so the work does not depend on the tokens drawn):

- RL-like: P prompts x group G, prompt lengths and long-tailed completion limits from a fixed seed;
- agent: E episodes of T turns, each turn's completion followed by a tool observation the next turn reads.

The old `generate` runs from a git worktree of BASELINE in a subprocess (this tree's generate is the engine).
Times exclude compilation (jax's own compile events are subtracted). Also printed: prompt tokens computed
(prefill) and the peak KV bytes each holds.

    python bench/rollout_engine.py [--prompts 64] [--group 8] [--episodes 16] [--turns 5] [--skip-transformers]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np
import torch
from flax import nnx
from transformers import CwmForCausalLM

import cwm_jax

BASELINE = "fb12f25"  # the last commit with the static-batch generate
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PRESET, MODEL = "cwm-10m", dict(vocab_size=16384, sliding_window=128, max_seq_len=4096)

if "JAX_PLATFORMS" not in os.environ:  # a CPU comparison unless you choose otherwise
    jax.config.update("jax_platforms", "cpu")

COMPILE_SECONDS = [0.0]


def _count_compiles(event: str, duration_secs: float, **kwargs: str | int) -> None:
    if event.startswith("/jax/core/compile"):
        COMPILE_SECONDS[0] += duration_secs


jax.monitoring.register_event_duration_secs_listener(_count_compiles)


def make_model():
    cfg = cwm_jax.from_preset(PRESET, **MODEL)
    return cwm_jax.CwmModel(cfg, nnx.Rngs(0))


def rl_workload(prompts: int, group: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    texts = [rng.integers(3, 16000, int(n)).tolist() for n in rng.integers(64, 193, prompts)]
    limits = np.clip(rng.lognormal(np.log(40), 1.0, prompts * group), 4, 384).astype(int).tolist()
    return [t for t in texts for _ in range(group)], limits


def agent_workload(episodes: int, turns: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    starts = [rng.integers(3, 16000, 256).tolist() for _ in range(episodes)]
    limits = np.clip(rng.lognormal(np.log(32), 0.8, (turns, episodes)), 4, 160).astype(int).tolist()
    observations = [
        [rng.integers(3, 16000, int(n)).tolist() for n in rng.integers(32, 129, episodes)] for _ in range(turns)
    ]
    return starts, limits, observations


def timed(fn):
    """(result, seconds without compiling)."""
    before, start = COMPILE_SECONDS[0], time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start - (COMPILE_SECONDS[0] - before)


def run_agent(generate_fn, starts, limits, observations):
    """Turn by turn: every episode generates its turn's limit, then reads its observation."""
    contexts, prompt_tokens = [list(s) for s in starts], 0
    for turn, turn_limits in enumerate(limits):
        prompt_tokens += sum(len(c) for c in contexts)
        outs = generate_fn(contexts, turn_limits, turn)
        contexts = [c + o + observations[turn][i] for i, (c, o) in enumerate(zip(contexts, outs, strict=True))]
    return contexts, prompt_tokens


def engine_side(model, rl, agent):
    from cwm_jax.engine.generate import GenerationSession  # not in the baseline tree, which imports this file

    prompts, limits = rl
    with GenerationSession(keep=False) as session:  # what generate() runs
        out, seconds = timed(lambda: session(model, prompts, limits))
        assert session.engine is not None
        stats = session.engine.stats()
    rl_result = dict(
        seconds=seconds, tokens=sum(map(len, out)), prefill=stats["prefill_tokens"], kv=stats["peak_kv_bytes"]
    )
    starts, agent_limits, observations = agent
    max_len = (
        max(len(s) for s in starts) + sum(max(t) for t in agent_limits) + sum(max(map(len, o)) for o in observations)
    )
    session = GenerationSession(max_len=max_len)

    def turn(contexts, turn_limits, i):
        return session(model, contexts, turn_limits, row_ids=list(range(len(contexts))))

    (_, _), agent_seconds = timed(lambda: run_agent(turn, starts, agent_limits, observations))
    assert session.engine is not None
    stats = session.engine.stats()
    session.close()
    agent_result = dict(
        seconds=agent_seconds,
        tokens=sum(map(sum, agent_limits)),
        prefill=stats["prefill_tokens"],
        kv=stats["peak_kv_bytes"],
    )
    return rl_result, agent_result


OLD_SIDE = r"""
import json, sys, time
import jax
jax.config.update("jax_platforms", "cpu")
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2])
import rollout_engine as bench
import cwm_jax, cwm_jax.sampling as sampling
from cwm_jax import kv_cache
work = json.load(open(sys.argv[3]))
kv_bytes, prefill = [0], [0]
init_cache = kv_cache.init_cache
def counted_cache(cfg, batch, max_len, chunk=1, ring=True):
    cache = init_cache(cfg, batch, max_len, chunk, ring)
    kv_bytes[0] = max(kv_bytes[0], sum(x.nbytes for x in jax.tree.leaves(cache["layers"])))
    return cache
sampling.init_cache = counted_cache
generate = sampling.generate
def counted_generate(model, prompts, limits, **kw):
    chunk = min(64, sampling._round_up(max(map(len, prompts)), 8))
    prefill[0] += len(prompts) * sampling._round_up(max(map(len, prompts)), chunk)
    return generate(model, prompts, limits, **kw)
model = bench.make_model()
out, seconds = bench.timed(lambda: counted_generate(model, work["prompts"], work["limits"]))
rl = dict(seconds=seconds, tokens=sum(map(len, out)), prefill=prefill[0], kv=kv_bytes[0])
kv_bytes[0], prefill[0] = 0, 0
def old_turn(contexts, limits, turn):
    return counted_generate(model, contexts, limits)
(_, _), seconds = bench.timed(
    lambda: bench.run_agent(old_turn, work["starts"], work["agent_limits"], work["observations"]))
agent = dict(seconds=seconds, tokens=sum(map(sum, work["agent_limits"])), prefill=prefill[0], kv=kv_bytes[0])
print("RESULT " + json.dumps([rl, agent]))
"""


def old_side(rl, agent):
    baseline = os.path.join(tempfile.gettempdir(), f"cwm_baseline_{BASELINE}")
    if not os.path.isdir(baseline):
        subprocess.run(
            ["git", "-C", REPO, "worktree", "add", "-f", baseline, BASELINE], check=True, capture_output=True
        )
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(dict(prompts=rl[0], limits=rl[1], starts=agent[0], agent_limits=agent[1], observations=agent[2]), f)
    env = {**os.environ, "PYTHONPATH": ""}
    done = subprocess.run(
        [sys.executable, "-c", OLD_SIDE, baseline, HERE, f.name], env=env, capture_output=True, text=True, check=False
    )
    os.unlink(f.name)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"the baseline generate failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[0][len("RESULT ") :])


def transformers_side(model, rl, agent):
    with tempfile.TemporaryDirectory() as path:
        cwm_jax.to_hf(model, path)
        hf = CwmForCausalLM.from_pretrained(path).eval()
    cfg = model.cfg
    per_position = cfg.n_layers * 2 * cfg.n_kv_heads * cfg.head_dim * 4

    def static_batch(prompts, limits):
        width = max(map(len, prompts))
        ids = torch.zeros((len(prompts), width), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, p in enumerate(prompts):  # left padding, as decoder-only batching needs
            ids[i, width - len(p) :], mask[i, width - len(p) :] = torch.tensor(p), 1
        new = max(limits)
        with torch.no_grad():
            out = hf.generate(
                ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0
            )
        stats["prefill"] += len(prompts) * width
        stats["kv"] = max(stats["kv"], len(prompts) * (width + new) * per_position)
        return [out[i, width : width + m].tolist() for i, m in enumerate(limits)]

    stats = dict(prefill=0, kv=0)
    _, seconds = timed(lambda: static_batch(*rl))
    rl_result = dict(seconds=seconds, tokens=sum(rl[1]), **stats)
    stats = dict(prefill=0, kv=0)
    _, seconds = timed(lambda: run_agent(lambda c, limits, i: static_batch(c, limits), *agent))
    return rl_result, dict(seconds=seconds, tokens=sum(map(sum, agent[1])), **stats)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--skip-transformers", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    rl, agent = rl_workload(args.prompts, args.group), agent_workload(args.episodes, args.turns)
    model = make_model()
    results = {"engine": engine_side(model, rl, agent), "static generate": old_side(rl, agent)}
    if not args.skip_transformers:
        results["transformers"] = transformers_side(model, rl, agent)
    print(
        f"{model.cfg.param_count() / 1e6:.1f}M-parameter proxy on {jax.device_count()} {jax.devices()[0].platform} "
        f"device(s); baseline generate = {BASELINE}"
    )
    for w, (name, description) in enumerate(
        (
            ("RL-like", f"{args.prompts} prompts x group {args.group}, {sum(rl[1]):,} completion tokens"),
            ("agent", f"{args.episodes} episodes x {args.turns} turns, {sum(map(sum, agent[1])):,} completion tokens"),
        )
    ):
        print(f"{name}: {description}")
        engine = results["engine"][w]
        for side, per in results.items():
            r = per[w]
            rate = r["tokens"] / r["seconds"]
            ratio = "" if side == "engine" else f"   engine / this: {engine['tokens'] / engine['seconds'] / rate:5.2f}x"
            print(
                f"  {side:<16} {rate:9,.0f} useful tokens/s   prefill {r['prefill']:9,} tokens   "
                f"peak KV {r['kv'] / 2**20:8.1f} MiB{ratio}"
            )


if __name__ == "__main__":
    main()
