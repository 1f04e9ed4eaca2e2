"""Every task family by name: what `rl.tasks` weights and `cwm eval` name."""

import functools
from collections.abc import Callable

from cwm_common.config_rules import config_error
from cwm_tasks.cruxeval import CruxevalTask
from cwm_tasks.humaneval import HumanEvalTask
from cwm_tasks.math_problems import MathTask
from cwm_tasks.stdio_programs import StdioTask
from cwm_tasks.swe import SweAgentTask
from cwm_tasks.task import Task
from cwm_tasks.toy_tasks import ArithmeticTask, EchoTask

TASKS: dict[str, Callable[..., Task]] = {
    "echo": EchoTask,
    "echo_bit": functools.partial(EchoTask, "echo_bit", 1),
    "arithmetic": ArithmeticTask,
    "math": MathTask,
    "humaneval": HumanEvalTask,
    "cruxeval": CruxevalTask,
    "stdio": StdioTask,
    "swe": SweAgentTask,
}


def require_known(names, field: str = "rl.tasks"):
    unknown = sorted(set(names) - set(TASKS))
    if unknown:
        raise config_error(field, f"names an unknown task '{unknown[0]}'; tasks: {', '.join(TASKS)}")


def is_agent_task(name: str) -> bool:
    """Whether the family runs multi-turn agent episodes (read from its class, nothing is built)."""
    require_known([name])
    factory = TASKS[name]
    return bool(getattr(getattr(factory, "func", factory), "multi_turn", False))


def make_task(name: str, **options) -> Task:
    require_known([name])
    return TASKS[name](**options)
