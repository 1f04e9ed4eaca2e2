"""Rollouts with scripted policies: single-turn scoring, agent episodes with real tools and a real SWE grade,
and failures (a sandbox that dies, an episode that runs out of time) that become failed samples."""

import dataclasses
import random
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from sandbox_fixtures import BACKENDS

from cwm_cli.main import main
from cwm_common.errors import CwmError
from cwm_common.experiment_config import load_config
from cwm_common.repo_paths import CONFIGS
from cwm_data import special_tokens as st
from cwm_data.tokenizer import train_sentencepiece
from cwm_envs.pool import SandboxPool
from cwm_envs.sandbox import SandboxLimits
from cwm_envs.sandbox_factory import make_sandbox
from cwm_jax.engine.generate import GenerationSession
from cwm_jax.model import CwmModel
from cwm_jax.presets import from_preset
from cwm_rl import rollouts
from cwm_rl.collector import initial_policy, rollout_settings
from cwm_rl.learner import make_batch
from cwm_rl.loop import check_rl_config, loss_budget
from cwm_rl.rollout_channel import DirectoryRollouts
from cwm_rl.rollouts import RolloutSettings, RolloutWorker
from cwm_rl.samples import FAILED, INFRA_FAILED, OK, Sample
from cwm_rl.task_mixture import TaskMixture
from cwm_tasks.swe import SweAgentTask

FIX = (
    "Guard the division.\n</think>\n<tool: edit>\ncalc.py\n<<<<<<< SEARCH\n    return a / b\n=======\n"
    "    if b == 0:\n        return None\n    return a / b\n>>>>>>> REPLACE\n</tool>"
)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    texts = [FIX, "x = 1\nprint(x)\n# prints: 1", "<think>\nok\n</think>\nDone.", "<output>\n</output>"] * 10
    return train_sentencepiece(texts, 400, str(tmp_path_factory.mktemp("tok") / "t.model"))


class Scripted:
    """generate(): the k-th assistant turn of every episode says script[k] (texts; EOT appended)."""

    def __init__(self, tokenizer, script, on_turn=None):
        self.tokenizer, self.script, self.on_turn = tokenizer, script, on_turn

    def __call__(self, model, prompts, max_new_tokens, **kwargs):
        outs = []
        for prompt in prompts:
            turn = self.tokenizer.decode(prompt).count("<|start_header_id|>assistant") - 1
            if self.on_turn:
                self.on_turn(turn)
            text = self.script[min(turn, len(self.script) - 1)]
            outs.append(self.tokenizer.encode(text) + [self.tokenizer.special_id(st.EOT)])
        return outs, [[-0.5] * len(o) for o in outs]


def _worker(tokenizer, tasks, script, backend, on_turn=None, pool_size=2, **settings):
    pool = SandboxPool(lambda: make_sandbox(backend, SandboxLimits(timeout_s=10)), pool_size)
    defaults = dict(group_size=2, max_new_tokens=64, max_turns=6, max_episode_tokens=30000, tool_timeout_s=10)
    return pool, RolloutWorker(
        tokenizer, pool, tasks, RolloutSettings(**{**defaults, **settings}), Scripted(tokenizer, script, on_turn)
    )


@pytest.mark.parametrize("backend", BACKENDS[:1])
def test_single_turn_scoring_and_a_dying_sandbox(tokenizer, backend):
    mixture = TaskMixture({"echo_bit": 1.0}, seed=0)
    prompts = mixture.batch(0, 2)
    answers = [p.meta["answer"] for p in prompts]
    pool, worker = _worker(tokenizer, mixture.tasks, [str(answers[0])], backend)
    with pool:
        samples, stats = worker.collect(None, 3, prompts, seed=0)
        assert [s.reward for s in samples] == [1.0, 1.0] + ([1.0, 1.0] if answers[1] == answers[0] else [-1.0, -1.0])
        assert all(s.version == 3 and s.status == OK and s.model_mask == [1] * len(s.completion) for s in samples)
        for sandbox in list(pool._all):
            sandbox.exec = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("sandbox died"))
        failed, _ = worker.collect(None, 4, prompts, seed=0)
    assert [s.status for s in failed] == [INFRA_FAILED] * 4 and not any(s.trained for s in failed)


@pytest.mark.parametrize("backend", BACKENDS[:1])
def test_agent_episode_with_tools_and_a_real_swe_grade(tokenizer, backend):
    task = SweAgentTask()
    prompt = next(p for p in (task.draw(random.Random(i)) for i in range(20)) if p.meta["id"] == "calc-divide-by-zero")
    script = [
        FIX,
        'Check it.\n</think>\n<tool: bash>\npython3 -c "import calc; print(calc.divide(1, 0))"\n</tool>',
        "No tool here: a format error, answered as a user message.\n</think>\nI think it works.",
        "Submit.\n</think>\n<tool: submit>\nfix.diff\n</tool>",
        "Done.\n</think>\n## Summary\nFixed.",
    ]
    pool, worker = _worker(tokenizer, {"swe": task}, script, backend)
    with pool:
        # The patch file is made by the environment here (the scripted model cannot run git itself).
        setup = task.setup

        def setup_with_patch(sandbox, meta):
            tools = setup(sandbox, meta)
            sandbox.put_file("repo/fix.diff", task.tasks[meta["id"]].gold_patch)
            return tools

        worker.tasks["swe"].setup = setup_with_patch
        samples, _ = worker.collect(None, 0, [prompt], seed=0)
    assert [s.reward for s in samples] == [1.0, 1.0] and all(s.status == OK for s in samples)
    sample = samples[0]
    text = tokenizer.decode(sample.completion)
    assert "<|start_header_id|>tool: edit<|end_header_id|>\n\n<output>\nFile calc.py has been successfully" in text
    assert "None\n\n</output>\n\n<budget>\n* Remaining turns: 4\n* Remaining tokens: " in text
    assert "<|start_header_id|>user<|end_header_id|>\n\nFormatError: No tool calls found<|eot_id|>" in text
    assert (
        "<submission>\ndiff --git" in text
        and text.count("<|start_header_id|>assistant<|end_header_id|>\n\n<think>\n") == 4
    )
    observation = [t for t, m in zip(sample.completion, sample.model_mask, strict=True) if m == 0]
    assert "tool: bash" in tokenizer.decode(observation) and sum(sample.model_mask) < len(sample.completion)
    assert all(lp == 0.0 for lp, m in zip(sample.logprobs, sample.model_mask, strict=True) if m == 0)


@pytest.mark.bwrap
def test_an_agent_works_on_a_mutate_fix_task_in_its_environment(tokenizer, inflection_tasks):
    """The `swe` family over `cwm gen-tasks` output: its sandboxes mount the tasks' environment, whose Python is
    the agent's and imports the package from the repository it edits; the gold patch is graded +1."""
    folder, _ = inflection_tasks
    task = SweAgentTask(folder=str(folder))
    view = task.sandbox_view()
    pool = SandboxPool(lambda: make_sandbox("bwrap", SandboxLimits(timeout_s=10, memory_mb=1024), view=view), 2)
    settings = RolloutSettings(
        group_size=2, max_new_tokens=64, max_turns=4, max_episode_tokens=30000, tool_timeout_s=10
    )
    script = [
        "Where is it?\n</think>\n<tool: bash>\npython -c 'import inflection; print(inflection.__file__)'\n</tool>",
        "Submit.\n</think>\n<tool: submit>\nfix.diff\n</tool>",
        "Done.\n</think>\n## Summary\nFixed.",
    ]
    worker = RolloutWorker(tokenizer, pool, {"swe": task}, settings, Scripted(tokenizer, script))
    setup = task.setup

    def setup_with_patch(sandbox, meta):  # the patch file is made here (the scripted model runs no git)
        tools = setup(sandbox, meta)
        sandbox.put_file("repo/fix.diff", task.tasks[meta["id"]].gold_patch)
        return tools

    worker.tasks["swe"].setup = setup_with_patch
    with pool:
        samples, _ = worker.collect(None, 0, [task.draw(random.Random(0))], seed=0)
    assert [s.reward for s in samples] == [1.0, 1.0] and all(s.status == OK for s in samples)
    assert "/work/repo/inflection/__init__.py" in tokenizer.decode(samples[0].completion)


@pytest.mark.parametrize("backend", BACKENDS[:1])
def test_sandbox_death_is_an_infra_failure_and_an_episode_timeout_the_policys(tokenizer, backend):
    task = SweAgentTask()
    prompt = task.draw(random.Random(0))
    pools: list[SandboxPool] = []

    def kill_on_second_turn(turn):
        if turn == 1:
            for sandbox in list(pools[0]._all):
                sandbox.close()

    pool, worker = _worker(tokenizer, {"swe": task}, [FIX, FIX, "Done."], backend, kill_on_second_turn)
    pools.append(pool)
    with pool:
        samples, _ = worker.collect(None, 0, [prompt], seed=0)
    assert [s.status for s in samples] == [INFRA_FAILED, INFRA_FAILED] and not any(s.trained for s in samples)
    pool, worker = _worker(
        tokenizer,
        {"swe": task},
        ["Wait.\n</think>\n<tool: bash>\nsleep 3\n</tool>"],
        backend,
        episode_timeout_s=2.0,
        max_turns=50,
    )
    start = time.perf_counter()
    with pool:
        samples, _ = worker.collect(None, 0, [prompt], seed=0)
    assert [s.status for s in samples] == [FAILED, FAILED] and "still running" in samples[0].info["why"]
    assert all(s.trained and s.reward == -1 for s in samples)
    assert time.perf_counter() - start < 60  # ended, not hung (a liveness bound, not speed)


def test_learner_batch_puts_rewards_on_the_last_model_token():
    a = Sample("t", 0, [5, 6], [7, 8, 9, 10], [1, 0, 0, 1], [-1.0, 0.0, 0.0, -2.0], 1.0, 0)
    b = Sample("t", 0, [5], [11], [1], [-0.5], -1.0, 0)
    batch = make_batch([a, b], rows=4, group_size=2)
    assert batch["tokens"].shape == (4, 32) and batch["tokens"][0, :6].tolist() == [5, 6, 7, 8, 9, 10]
    # Target position t predicts token t+1: completion token k of `a` is target position 1 + k.
    assert batch["mask"][0, :6].tolist() == [0, 1, 0, 0, 1, 0]
    assert batch["old_logp"][0, 1] == -1.0 and batch["old_logp"][0, 4] == -2.0
    assert batch["rewards"][0].tolist().index(1.0) == 4 and batch["rewards"][1, 0] == -1.0
    assert batch["mask"][2:].sum() == 0  # padding rows (a missing group) train nothing
    assert batch["trained"].tolist() == [1, 1, 0, 0]
    failed = dataclasses.replace(b, status=INFRA_FAILED)
    assert make_batch([a, failed], rows=2, group_size=2)["trained"].tolist() == [1, 0]


def test_rollout_batches_cross_processes_through_a_directory(tmp_path):
    samples = [
        Sample(
            "echo_bit",
            g,
            [5, 6],
            [7, 8, 9],
            [1, 0, 1],
            [-0.25, 0.0, -1.0 / 3],
            1.0 - g,
            4,
            FAILED if g else OK,
            {"result": "x"},
        )
        for g in range(2)
    ]
    channel = DirectoryRollouts(str(tmp_path))
    assert channel.pop(7) is None
    script = (
        "import sys; from cwm_rl.rollout_channel import DirectoryRollouts; from cwm_rl.samples import Sample; "
        "DirectoryRollouts(sys.argv[1]).put(7, [Sample(**eval(a)) for a in sys.argv[2:]], {'seconds': 0.5})"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), *(repr(dataclasses.asdict(s)) for s in samples)], check=True
    )
    assert channel.pop(7) == (samples, {"seconds": 0.5})
    assert channel.pop(7) is None and not list(tmp_path.iterdir())  # read once, then gone


def test_external_actor_mistakes_are_named(tmp_path, capsys):
    assert main(["rl-actor", "--exchange", str(tmp_path), "--actor", "0"]) == 2
    assert f"{tmp_path}/run.json is missing: start the learner (cwm rl) first" in capsys.readouterr().err
    (tmp_path / "run.json").write_text('{"actors": 2, "first_batch": 0}')
    assert main(["rl-actor", "--exchange", str(tmp_path), "--actor", "2"]) == 2
    assert "--actor 2: the learner expects actors 0-1" in capsys.readouterr().err
    cfg = load_config(f"{CONFIGS}/rl_tiny.py", ["--config.rl.launch_actors=False"])
    with pytest.raises(CwmError, match="'rl.launch_actors' is False: set rl.actor_processes"):
        check_rl_config(cfg)


def test_task_mixture_mistakes_are_named():
    with pytest.raises(CwmError, match="config field 'rl.tasks' names an unknown task 'chess'"):
        TaskMixture({"chess": 0.0, "echo": 1.0}, seed=0)
    with pytest.raises(CwmError, match="config field 'rl.tasks' has every task weight at 0"):
        TaskMixture({"echo": 0.0}, seed=0)


@pytest.mark.parametrize("backend", BACKENDS[:1])
def test_a_pool_smaller_than_the_agent_episodes_is_a_named_config_error(tokenizer, backend):
    task = SweAgentTask()
    pool, worker = _worker(tokenizer, {"swe": task}, ["Done."], backend, pool_size=1)
    with pool, pytest.raises(CwmError, match=r"config field 'rl.pool_size' \(1\) must be at least the agent episodes"):
        worker.collect(None, 0, [task.draw(random.Random(0))], seed=0)


def test_the_loss_budget_counts_turns_only_when_an_agent_task_is_drawn():
    cfg = load_config(f"{CONFIGS}/rl_tiny.py")
    assert "swe" in cfg.rl.tasks and cfg.rl.tasks.swe == 0.0
    assert loss_budget(cfg.rl) == 8 * 8 * 6  # rows x max_new_tokens; swe is listed at weight 0
    swe = load_config(f"{CONFIGS}/rl_tiny.py", ["--config.rl.tasks.swe=1.0"])
    assert loss_budget(swe.rl) == 8 * 8 * 6 * 6  # x max_turns
    assert loss_budget(load_config(f"{CONFIGS}/rl_tiny.py", ["--config.rl.budget_tokens=1000"]).rl) == 1000


def test_rollout_settings_come_from_the_config_by_name():
    cfg = load_config(f"{CONFIGS}/rl_tiny.py", ["--config.rl.episode_timeout_s=5.5", "--config.rl.top_p=0.9"])
    settings = rollout_settings(cfg.rl)
    assert settings.episode_timeout_s == 5.5 and settings.top_p == 0.9
    for field in dataclasses.fields(settings):
        if field.name in cfg.rl:
            assert getattr(settings, field.name) == cfg.rl[field.name], field.name


def test_a_missing_tokenizer_names_the_config_field(tmp_path):
    cfg = load_config(f"{CONFIGS}/rl_tiny.py")
    with pytest.raises(CwmError, match="set config field 'policy.tokenizer'") as error:
        initial_policy(cfg)
    assert "--tokenizer" not in str(error.value)


class _CountingSession(GenerationSession):
    """A GenerationSession that remembers, when it closes, how many prompt tokens its engine computed."""

    prefilled: list[int] = []

    def close(self):
        if self.engine is not None:
            _CountingSession.prefilled.append(self.engine.stats()["prefill_tokens"])
        super().close()


@pytest.mark.parametrize("backend", BACKENDS[:1])
def test_agent_episodes_of_a_real_policy_extend_their_cache_turn_by_turn(tokenizer, backend, monkeypatch):
    """The engine session keeps each episode's pages between turns: the group's prompt is prefilled once and
    every later turn only its observation; the log-probs an episode records equal a full forward over
    everything it saw (the cache the turns continued is the sequence's own)."""
    task = SweAgentTask()
    prompt = task.draw(random.Random(0))
    ids = tokenizer.encode_pieces(prompt.pieces)
    cfg = from_preset("cwm-tiny", vocab_size=tokenizer.vocab_size, max_seq_len=(len(ids) // 512 + 3) * 512)
    model = CwmModel(cfg, nnx.Rngs(0))
    monkeypatch.setattr(rollouts, "GenerationSession", _CountingSession)
    pool = SandboxPool(lambda: make_sandbox(backend, SandboxLimits(timeout_s=10)), 2)
    settings = RolloutSettings(group_size=2, max_new_tokens=12, max_turns=3, max_episode_tokens=len(ids) + 300)
    with pool:
        samples, _ = RolloutWorker(tokenizer, pool, {"swe": task}, settings).collect(model, 0, [prompt], seed=0)
    # Observations a later turn read (the one after an episode's last turn is never prefilled).
    observed = sum(s.model_mask[: len(s.model_mask) - s.model_mask[::-1].index(1)].count(0) for s in samples)
    assert observed > 0 and _CountingSession.prefilled == [len(ids) + observed]
    for sample in samples:
        assert sample.prompt == ids
        full = jax.nn.log_softmax(model(jnp.asarray([ids + sample.completion], jnp.int32))[0], axis=-1)
        want = [float(full[len(ids) - 1 + i, t]) for i, t in enumerate(sample.completion)]
        got = np.asarray(sample.logprobs)
        mask = np.asarray(sample.model_mask, bool)
        np.testing.assert_allclose(got[mask], np.asarray(want)[mask], atol=1e-4)
