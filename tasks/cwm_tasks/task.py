"""What a task family gives its users (evals and RL): prompts as token pieces, and a grader.

A single-turn family grades one completion; an agent family (`multi_turn`; cwm_tasks.swe) has
`setup(sandbox, meta)`, which readies a sandbox for an episode and returns its `AgentTools`, and
`grade(sandbox, submission, meta)`, which grades what the agent submitted. Families with a fixed problem set list it in
`prompts()` (evals go through it in order); RL draws with `draw(rng)`.
"""

import dataclasses
import random
from typing import Protocol

from cwm_envs.sandbox import Sandbox
from cwm_tasks.reward_result import RewardResult


@dataclasses.dataclass
class Prompt:
    task: str  # the family's registered name
    pieces: list[str]  # token pieces (cwm_data.special_tokens)
    meta: dict  # what the grader needs; "id" names the problem


class Task(Protocol):
    name: str
    multi_turn: bool

    def draw(self, rng: random.Random) -> Prompt: ...


class SingleTurnTask(Task, Protocol):
    needs_sandbox: bool

    @property
    def stops(self) -> tuple[str, ...]: ...  # special tokens that end a completion

    def grade(self, sandbox: Sandbox | None, completion: str, meta: dict) -> RewardResult: ...


class ProblemSet(SingleTurnTask, Protocol):
    def prompts(self) -> list[Prompt]: ...
