"""The README's story on a short run: a tiny CWM trained on the shipped traces learns, under GRPO with
sandboxed rewards, to answer better; and the RL run resumes from its checkpoint."""

import json

from cwm_common.experiment_config import load_config
from cwm_rl.loop import run_rl
from cwm_rl.story import CONFIGS, run_story


def test_story_runs_and_reward_rises(tmp_path):
    lines = []
    result = run_story(str(tmp_path), train_steps=150, rl_steps=20, rl_mode="sync", log=lines.append)
    first_loss, last_loss = result["loss"]
    assert last_loss < first_loss - 1.0
    rewards = result["rewards"]
    # Starting near -1 (almost every answer wrong), the mean reward of the last 10 steps is clearly higher.
    early, late = sum(rewards[:5]) / 5, sum(rewards[-10:]) / 10
    assert rewards[0] < -0.7 and late > early + 0.3, rewards
    assert any(line.startswith("== 3/3") for line in lines) and (tmp_path / "rl" / "reward_curve.png").exists()
    records = [json.loads(line) for line in (tmp_path / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert {"step", "reward_mean", "reward_mean/echo_bit", "reward_std/echo_bit", "pass_rate", "gen_tokens_per_s",
            "learner_tokens_per_s", "staleness_mean", "clip_fraction"} <= set(records[0])

    # Running again with more steps resumes from the last checkpoint (step 20) and appends steps 21-22.
    config = load_config(f"{CONFIGS}/rl_tiny.py", [f"--config.policy.checkpoint={tmp_path / 'tiny'}",
                                                   "--config.steps=22", "--config.rl.mode=sync"])
    logs = []
    run_rl(config, str(tmp_path / "rl"), log=logs.append)
    assert "resumed RL from step 20" in logs
    steps = [json.loads(line)["step"] for line in (tmp_path / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 23))
