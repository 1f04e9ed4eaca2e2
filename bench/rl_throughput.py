"""Rollout and learner throughput of the RL loop, synchronous vs asynchronous, in one process, and how much
of each step the learner spends waiting for rollouts (async should hide generation and sandbox latency).

    python bench/rl_throughput.py --policy runs/demo/tiny [--steps 12] [--backend bwrap|docker]

--policy is a training workdir (the demo's `tiny`); steps after the first (compilation) are averaged.
"""

import argparse
import json
import os
import shutil
import tempfile
import time

from cwm_common.experiment_config import load_config
from cwm_common.repo_paths import CONFIGS
from cwm_rl.loop import run_rl

MODES = {
    "sync": ["--config.rl.mode=sync"],
    "async (thread)": [],
    "async (2 processes)": ["--config.rl.actor_processes=2"],
}


def run_mode(policy: str, overrides: list[str], steps: int, backend: str, workdir: str) -> dict:
    shutil.rmtree(workdir, ignore_errors=True)
    config = load_config(
        os.path.join(CONFIGS, "rl_tiny.py"),
        [
            f"--config.policy.model={policy}",
            f"--config.steps={steps}",
            f"--config.rl.sandbox_backend={backend}",
            f"--config.checkpoint_every={steps}",
            *overrides,
        ],
    )
    start = time.perf_counter()
    run_rl(config, workdir, log=lambda m: None)
    wall = time.perf_counter() - start
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f][1:]

    def mean(key):
        return sum(r[key] for r in records) / len(records)

    return {
        "episodes_per_s": mean("episodes_per_s"),
        "gen_tokens_per_s": mean("gen_tokens_per_s"),
        "learner_tokens_per_s": mean("learner_tokens_per_s"),
        "wait": mean("learner_wait_fraction"),
        "seconds_per_step": mean("step_seconds"),
        "wall": wall,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--policy", required=True)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--backend", default="bwrap", choices=("bwrap", "docker"))
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k, (mode, overrides) in enumerate(MODES.items()):
            results[mode] = r = run_mode(args.policy, overrides, args.steps, args.backend, os.path.join(tmp, str(k)))
            print(
                f"{mode:19s}: {r['seconds_per_step']:.2f} s/step  rollouts {r['episodes_per_s']:.1f} episodes/s "
                f"{r['gen_tokens_per_s']:,.0f} tok/s  learner {r['learner_tokens_per_s']:,.0f} tok/s  "
                f"learner waiting {r['wait']:.0%} of each step"
            )
    for mode in list(MODES)[1:]:
        print(
            f"{mode} / sync step time: {results[mode]['seconds_per_step'] / results['sync']['seconds_per_step']:.2f}x"
        )


if __name__ == "__main__":
    main()
