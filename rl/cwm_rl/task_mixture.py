"""The RL prompt stream: task families (cwm_tasks.registry) drawn by weight."""

import random

from cwm_common.config_rules import require
from cwm_envs.sandbox import SandboxView
from cwm_tasks.registry import make_task, require_known
from cwm_tasks.task import Prompt


class TaskMixture:
    """Draws (task, prompt) by weight; batch b's prompts depend only on (seed, b), so a resumed or an
    asynchronous run sees the same prompts at the same step as a synchronous one."""

    def __init__(self, weights: dict[str, float], seed: int, options: dict[str, dict] | None = None):
        """`options`: keyword arguments for a family's constructor, by task name."""
        require_known(weights)
        require(any(w > 0 for w in weights.values()), "rl.tasks", "has every task weight at 0")
        options = options or {}
        self.tasks = {name: make_task(name, **options.get(name, {})) for name, w in weights.items() if w > 0}
        self.names = sorted(self.tasks)
        self.weights = [weights[n] for n in self.names]
        self.seed = seed

    def sandbox_view(self) -> SandboxView:
        """What the families' sandboxes must show (a family with an environment mounts it)."""
        view = SandboxView()
        for name in self.names:
            family_view = getattr(self.tasks[name], "sandbox_view", None)
            if family_view is not None:
                view = view.plus(family_view())
        return view

    def batch(self, index: int, count: int) -> list[Prompt]:
        prompts = []
        for position in range(index * count, (index + 1) * count):
            rng = random.Random(f"{self.seed}:{position}")
            prompts.append(self.tasks[rng.choices(self.names, self.weights)[0]].draw(rng))
        return prompts
