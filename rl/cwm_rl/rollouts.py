"""Rollouts: groups of G samples per prompt. Single-turn tasks are generated in one batch and scored in
sandboxes; agent tasks run CWM's tool loop (the model's `<tool: ...>` calls execute in a sandbox and the
observations go back into the context as masked environment tokens) within turn and token budgets.

A sandbox that dies, or a sandbox call that raises, makes an INFRA_FAILED sample (masked out of training);
an episode that runs out of time makes a FAILED one (reward -1, the policy's doing); neither crashes or
hangs the loop.
"""

import contextlib
import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor

from cwm_common.config_rules import config_error
from cwm_data import special_tokens as st
from cwm_data.chat_format import STOP_TOKENS, THINK_END, FormatError, observation, parse_tool_call, tool_role
from cwm_data.tokenizer import CwmTokenizer
from cwm_envs.pool import SandboxPool
from cwm_envs.sandbox import Sandbox
from cwm_jax.engine.generate import GenerationSession, generate
from cwm_rl.samples import FAILED, INFRA_FAILED, OK, Sample
from cwm_tasks.agent_tools import AgentTools, NoSuchToolError, fit_message, tool_result_message
from cwm_tasks.reward_result import FAIL
from cwm_tasks.task import Prompt


@dataclasses.dataclass(frozen=True)
class RolloutSettings:
    group_size: int
    max_new_tokens: int  # per single-turn completion, and per agent turn
    temperature: float = 1.0
    top_p: float = 1.0
    max_turns: int = 8
    max_episode_tokens: int = 4096  # prompt + every turn + every observation
    tool_timeout_s: float = 30.0
    max_feedback_tokens: int = 32768  # a tool result or error message is cut to this (the release's)
    score_timeout_s: float = 120.0  # waiting for a free sandbox
    episode_timeout_s: float = 600.0  # an agent episode still running then is a failed sample


class RolloutWorker:
    """`generate_fn` has cwm_jax.generate's signature (tests pass a scripted one); by default single-turn
    groups go through `generate` and agent episodes through one engine session per batch, which keeps each
    episode's cache between turns so a turn prefills only the tool observation."""

    def __init__(
        self, tokenizer: CwmTokenizer, pool: SandboxPool, tasks: dict, settings: RolloutSettings, generate_fn=None
    ):
        self.tokenizer, self.pool, self.tasks, self.settings = tokenizer, pool, tasks, settings
        self.generate = generate_fn or generate
        self.scripted = generate_fn is not None
        self.stops = tuple(tokenizer.special_id(name) for name in STOP_TOKENS)
        self.eot = tokenizer.special_id(st.EOT)

    def collect(
        self, model, version: int, prompts: list[Prompt], seed: int, first_group: int = 0
    ) -> tuple[list[Sample], dict]:
        """G samples per prompt (groups consecutive, in prompt order, numbered from first_group) and generation
        statistics. Sample j of group g draws from random stream g * G + j, so a batch's groups collected in
        parts (by several processes) are the groups collected at once."""
        start = time.perf_counter()
        single = [(g, p) for g, p in enumerate(prompts, first_group) if not self.tasks[p.task].multi_turn]
        multi = [(g, p) for g, p in enumerate(prompts, first_group) if self.tasks[p.task].multi_turn]
        samples = self._single_turn(model, version, single, seed) if single else []
        samples += self._agent_episodes(model, version, multi, seed) if multi else []
        samples.sort(key=lambda s: s.group)
        generated = sum(s.model_tokens for s in samples)
        return samples, {"generated_tokens": generated, "seconds": time.perf_counter() - start}

    def _single_turn(self, model, version, groups, seed) -> list[Sample]:
        g_size = self.settings.group_size
        prompts = [self.tokenizer.encode_pieces(p.pieces) for _, p in groups for _ in range(g_size)]
        tokens, logps = self.generate(
            model,
            prompts,
            self.settings.max_new_tokens,
            temperature=self.settings.temperature,
            top_p=self.settings.top_p,
            stop_tokens=self.stops,
            seed=seed,
            row_ids=[g * g_size + j for g, _ in groups for j in range(g_size)],
            return_logprobs=True,
        )
        jobs = [(groups[i // g_size], prompts[i], tokens[i], logps[i]) for i in range(len(prompts))]

        def score(job):
            (group, prompt), ids, completion, logp = job
            text = self.tokenizer.decode([t for t in completion if t not in self.stops])
            try:
                with self.pool.sandbox(timeout=self.settings.score_timeout_s) as sandbox:
                    result = self.tasks[prompt.task].grade(sandbox, text, prompt.meta)
                status, reward, why = OK, result.reward, result.status
            except Exception as e:  # a dead sandbox or no free sandbox in time: not the policy's failure
                status, reward, why = INFRA_FAILED, FAIL, f"{type(e).__name__}: {e}"[:300]
            return Sample(
                prompt.task,
                group,
                ids,
                completion,
                [1] * len(completion),
                logp,
                reward,
                version,
                status,
                {"result": why},
            )

        with ThreadPoolExecutor(max(1, self.pool.size)) as threads:
            return list(threads.map(score, jobs))

    def _agent_episodes(self, model, version, groups, seed) -> list[Sample]:
        """All episodes advance turn by turn together (one batched generation per turn)."""
        settings = self.settings
        episodes = [
            _Episode(group, group * settings.group_size + j, prompt, self.tokenizer.encode_pieces(prompt.pieces))
            for group, prompt in groups
            for j in range(settings.group_size)
        ]
        if len(episodes) > self.pool.size:
            raise config_error(
                "rl.pool_size",
                f"({self.pool.size}) must be at least the agent episodes of a batch "
                f"({len(episodes)}: agent prompts x rl.group_size), one sandbox each",
            )
        deadline = time.perf_counter() + settings.episode_timeout_s
        with contextlib.ExitStack() as stack:
            session = (
                self.generate
                if self.scripted
                else stack.enter_context(GenerationSession(max_len=settings.max_episode_tokens))
            )
            for episode in episodes:
                episode.sandbox = stack.enter_context(self.pool.sandbox(timeout=settings.score_timeout_s))
                episode.tools = self._guard(
                    episode, lambda e=episode: self.tasks[e.prompt.task].setup(e.sandbox, e.prompt.meta)
                )
            for turn in range(settings.max_turns):
                if time.perf_counter() > deadline:
                    for episode in episodes:
                        if not episode.done:
                            episode.fail(f"episode still running after {settings.episode_timeout_s:g}s")
                for episode in episodes:  # an observation may have filled the episode's budget
                    if len(episode.context) >= settings.max_episode_tokens:
                        episode.done = True
                active = [e for e in episodes if not e.done]
                if not active:
                    break
                room = [settings.max_episode_tokens - len(e.context) for e in active]
                budget = min(settings.max_new_tokens, max(room))
                outs, logps = session(
                    model,
                    [e.context for e in active],
                    [min(budget, r) for r in room],
                    temperature=settings.temperature,
                    top_p=settings.top_p,
                    stop_tokens=self.stops,
                    seed=seed * 1000 + turn,
                    row_ids=[e.row for e in active],
                    return_logprobs=True,
                )
                for episode, out, logp in zip(active, outs, logps, strict=True):
                    episode.add(out, [1] * len(out), logp)
                with ThreadPoolExecutor(len(active)) as threads:
                    list(threads.map(self._act, active))
            for episode in episodes:
                if episode.tools is not None:
                    episode.tools.close()
                if episode.status == OK:
                    self._guard(
                        episode,
                        lambda e=episode: setattr(
                            e, "reward", self.tasks[e.prompt.task].grade(e.sandbox, e.submission, e.prompt.meta).reward
                        ),
                    )
        return [e.sample(version) for e in episodes]

    def _act(self, episode: "_Episode"):
        """Answers the episode's last turn as the release's agent environment does: runs its tool call and
        appends the result with the budget notice; a malformed turn gets a user message saying what is wrong,
        unless a patch was submitted already, which makes it the final answer (the episode ends)."""
        settings, tools = self.settings, episode.tools
        assert tools is not None  # _agent_episodes sets every episode up before its first turn
        text = self.tokenizer.decode([t for t in episode.last_turn if t not in self.stops])
        episode.turns += 1
        if len(episode.context) >= settings.max_episode_tokens:
            episode.done = True
            return
        try:
            call = parse_tool_call(text, reasoning=True)
            result = self._guard(episode, lambda: tools.run(call))
        except (FormatError, NoSuchToolError) as e:
            if episode.submission is not None and text.count(THINK_END) == 1:
                episode.done = True
                return
            self._observe(episode, "user", f"{type(e).__name__}: {e}")
            return
        if result is None:  # the sandbox failed
            episode.done = True
            return
        if result.submission is not None:
            episode.submission = result.submission
        role = tool_role(call.name)
        message = tool_result_message(
            self.tokenizer,
            role,
            result.feedback,
            settings.max_turns - episode.turns,
            len(episode.context),
            settings.max_episode_tokens,
            settings.max_feedback_tokens,
        )
        self._observe(episode, role, message)

    def _observe(self, episode: "_Episode", role: str, text: str):
        """Appends an environment message (cut to max_feedback_tokens) and re-opens the assistant's turn with
        "<think>"; a model turn that did not end with <|eot_id|> gets one first."""
        text = fit_message(self.tokenizer, role, text, self.settings.max_feedback_tokens)
        tokens = self.tokenizer.encode_pieces(observation(role, text, reasoning=True))
        if not episode.last_turn or episode.last_turn[-1] != self.eot:
            tokens = [self.eot, *tokens]
        episode.add(tokens, [0] * len(tokens), [0.0] * len(tokens))

    @staticmethod
    def _guard(episode: "_Episode", action):
        try:
            if episode.sandbox is None or not episode.sandbox.alive():
                raise RuntimeError("the sandbox died")
            return action()
        except Exception as e:
            episode.fail(f"{type(e).__name__}: {e}"[:300], INFRA_FAILED)
            return None


class _Episode:
    def __init__(self, group: int, row: int, prompt: Prompt, prompt_ids: list[int]):
        self.group, self.row, self.prompt, self.prompt_ids = group, row, prompt, prompt_ids  # row: random stream
        self.context = list(prompt_ids)
        self.completion: list[int] = []
        self.mask: list[int] = []  # 1 on model tokens, 0 on environment tokens
        self.logprobs: list[float] = []
        self.last_turn: list[int] = []  # the model's tokens of its latest turn
        self.done, self.status, self.reward, self.why = False, OK, FAIL, ""
        self.submission: str | None = None
        self.turns = 0  # model turns answered so far
        self.sandbox: Sandbox | None = None  # set for every episode before its first action
        self.tools: AgentTools | None = None

    def add(self, tokens, mask, logprobs):
        self.context += tokens
        self.completion += tokens
        self.mask += mask
        self.logprobs += list(logprobs)
        if mask and mask[0]:
            self.last_turn = tokens

    def fail(self, why: str, status: str = FAILED):
        self.status, self.done, self.reward, self.why = status, True, FAIL, why

    def sample(self, version: int) -> Sample:
        return Sample(
            self.prompt.task,
            self.group,
            self.prompt_ids,
            self.completion,
            self.mask,
            self.logprobs,
            self.reward,
            version,
            self.status,
            {"why": self.why, "submitted": self.submission is not None},
        )
