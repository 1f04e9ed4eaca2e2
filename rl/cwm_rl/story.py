"""The whole CWM story on an embedded default, on CPU, in minutes (README's main command):
1. trace the shipped corpus (Python functions, programs, CRUXEval) into CWM's trace format;
2. train a tiny CWM on those traces, agent trajectories and code;
3. run GRPO on a small verifiable task whose rewards come from sandboxed execution.
"""

import json
import os

from array_record.python.array_record_data_source import ArrayRecordDataSource

from cwm_common.experiment_config import load_config
from cwm_common.repo_paths import CONFIGS
from cwm_data import trace_format
from cwm_data.shipped_corpus import build_shipped_corpus
from cwm_data.trace_frames import Frame
from cwm_jax.train.loop import train
from cwm_rl.loop import run_rl


def _metrics(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def run_story(workdir: str, train_steps: int = 150, rl_steps: int = 30, rl_mode: str = "async", log=print) -> dict:
    lm_dir, rl_dir = os.path.join(workdir, "tiny"), os.path.join(workdir, "rl")
    log("== 1/3  tracing the shipped corpus into CWM's trace format")
    built = build_shipped_corpus(os.path.join(lm_dir, "data"), 768, log=log)
    with open(os.path.join(lm_dir, "data", "manifest.json")) as f:
        manifest = json.load(f)
    example = json.loads(ArrayRecordDataSource(built["trace"])[0])
    frames = [Frame.from_json(f) for f in example["frames"]][:3]
    log(
        f"   {manifest['traces']} traces; the first frames of one:\n   "
        + trace_format.to_text(trace_format.render(frames, False))[:300].replace("\n", "\n   ")
    )

    log(f"== 2/3  training a tiny CWM ({train_steps} steps) on traces, agent trajectories and code")
    train_cfg = load_config(
        os.path.join(CONFIGS, "tiny.py"),
        [f"--config.steps={train_steps}", f"--config.log_every={max(1, train_steps // 5)}"],
    )
    train(train_cfg, lm_dir, log=log)
    losses = [r["loss"] for r in _metrics(os.path.join(lm_dir, "metrics.jsonl"))]
    log(f"   loss {losses[0]:.3f} -> {losses[-1]:.3f}")

    log(f"== 3/3  GRPO ({rl_steps} steps, {rl_mode}) on a task rewarded by running the answer in a sandbox")
    rl_cfg = load_config(
        os.path.join(CONFIGS, "rl_tiny.py"),
        [
            f"--config.policy.model={lm_dir}",
            f"--config.steps={rl_steps}",
            f"--config.rl.mode={rl_mode}",
            f"--config.log_every={max(1, rl_steps // 6)}",
        ],
    )
    run_rl(rl_cfg, rl_dir, log=log)
    rewards = [r["reward_mean"] for r in _metrics(os.path.join(rl_dir, "metrics.jsonl"))]
    window = max(1, len(rewards) // 5)
    first, last = sum(rewards[:window]) / window, sum(rewards[-window:]) / window
    log(
        f"   mean reward {first:+.3f} (first {window} steps) -> {last:+.3f} (last {window} steps); "
        f"curve: {os.path.join(rl_dir, 'reward_curve.png')}"
    )
    return {"loss": (losses[0], losses[-1]), "reward": (first, last), "rewards": rewards}
