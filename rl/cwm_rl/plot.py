"""The reward curves of an RL run, from its metrics.jsonl, as a PNG."""

import json

from matplotlib.figure import Figure


def plot_rewards(metrics_path: str, png_path: str):
    with open(metrics_path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    if not records:
        return
    steps = [r["step"] for r in records]
    figure = Figure(figsize=(7, 4))
    axis = figure.subplots()
    axis.plot(steps, [r["reward_mean"] for r in records], label="all tasks", linewidth=2)
    for key in sorted({k for r in records for k in r if k.startswith("reward_mean/")}):
        axis.plot(steps, [r.get(key) for r in records], label=key.split("/", 1)[1], alpha=0.7)
    axis.set_xlabel("learner step")
    axis.set_ylabel("mean reward")
    axis.set_ylim(-1.05, 1.05)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
