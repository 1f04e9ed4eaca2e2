"""A longer GRPO run of the demo's task (the test runs 20 steps): prints the reward curve and keeps its PNG.

python bench/rl_learning_curve.py [--workdir runs/rl_bench] [--rl-steps 100] [--mode async]
"""

import argparse
import json
import os
import shutil

from cwm_rl.story import run_story


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", default="runs/rl_bench")
    parser.add_argument("--train-steps", type=int, default=150)
    parser.add_argument("--rl-steps", type=int, default=100)
    parser.add_argument("--mode", default="async", choices=("async", "sync"))
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    result = run_story(args.workdir, args.train_steps, args.rl_steps, args.mode, log=lambda m: None)
    with open(os.path.join(args.workdir, "rl", "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    for start in range(0, len(records), 10):
        window = records[start : start + 10]
        mean = sum(r["reward_mean"] for r in window) / len(window)
        gen = sum(r["gen_tokens_per_s"] for r in window) / len(window)
        learn = sum(r["learner_tokens_per_s"] for r in window) / len(window)
        stale = sum(r["staleness_mean"] for r in window) / len(window)
        print(
            f"steps {start + 1:3d}-{start + len(window):3d}: reward {mean:+.3f}  pass "
            f"{sum(r['pass_rate'] for r in window) / len(window):.0%}  gen {gen:,.0f} tok/s  "
            f"learn {learn:,.0f} tok/s  staleness {stale:.2f}"
        )
    print(
        f"loss {result['loss'][0]:.3f} -> {result['loss'][1]:.3f}; curve: "
        f"{os.path.join(args.workdir, 'rl', 'reward_curve.png')}"
    )


if __name__ == "__main__":
    main()
