"""The stdin/stdout family (CWM's competitive-programming RL) on its shipped problems: reference solutions in
Python and C++ pass every test, wrong ones fail test by test; the same family runs as `cwm eval stdio` and
as an RL task."""

import argparse
import pathlib

import pytest
from sandbox_fixtures import BACKENDS, sandbox_of

from cwm_cli.eval_command import evaluate
from cwm_common.repo_paths import BENCHMARKS
from cwm_data.tokenizer import train_sentencepiece
from cwm_envs.pool import SandboxPool
from cwm_envs.sandbox import SandboxLimits
from cwm_envs.sandbox_factory import make_sandbox
from cwm_rl.rollouts import RolloutSettings, RolloutWorker
from cwm_rl.task_mixture import TaskMixture
from cwm_tasks.stdio_programs import StdioTask, extract_code, load_stdio_problems

SOLUTIONS = pathlib.Path(BENCHMARKS) / "stdio" / "solutions"
EXTENSIONS = {"python": "py", "cpp": "cpp"}
# A wrong solution per language: the longest rise counted non-strictly (right where values are distinct).
WRONG = {"python": ("bisect.bisect_left", "bisect.bisect_right"), "cpp": ("std::lower_bound", "std::upper_bound")}


def reference(problem_id: str, language: str) -> str:
    return (SOLUTIONS / f"{problem_id}.{EXTENSIONS[language]}").read_text()


def wrong(language: str) -> str:
    return reference("p0003", language).replace(*WRONG[language])


def answer(language: str, code: str) -> str:
    return f"I will use a stack.\n</think>\nHere it is:\n```{language}\n{code}```\n"


def test_problems_load_in_livecodebench_layout():
    problems = load_stdio_problems()
    assert [p.problem_id for p in problems] == [f"p000{i}" for i in range(1, 7)]
    for p in problems:
        assert p.public_tests and len(p.private_tests) >= 5
        for test in p.public_tests:  # the public tests are the statement's samples
            assert test.stdin.strip() in p.statement and test.expected.strip() in p.statement


def test_code_is_taken_from_the_answer_in_the_asked_language():
    text = "<think>\n```python\nprint(1)\n```\n</think>\n```cpp\nint main(){}\n```\n```python\nprint(2)\n```"
    assert extract_code(text, "python") == "print(2)\n"
    assert extract_code(text, "cpp") == "int main(){}\n"
    assert extract_code("no code here", "python") is None


@pytest.mark.parametrize("backend", BACKENDS[:1])
def test_reference_solutions_pass_every_test_and_a_wrong_one_fails_test_by_test(backend):
    task = StdioTask()
    sandbox = sandbox_of(backend, timeout_s=60)
    try:
        for prompt in task.prompts():
            meta = prompt.meta
            result = task.grade(sandbox, answer(meta["language"], reference(meta["problem"], meta["language"])), meta)
            assert (result.reward, result.status) == (1, "passed"), (meta, result.log, result.tests)
            assert len(result.tests) == len(task.problems[meta["problem"]].tests)
        for language in ("python", "cpp"):
            meta = {"id": f"p0003/{language}", "problem": "p0003", "language": language}
            result = task.grade(sandbox, answer(language, wrong(language)), meta)
            passed = [t.passed for t in result.tests]
            assert result.reward == -1 and any(passed) and not all(passed), (language, result.tests)
            assert task.grade(sandbox, "no fence", meta).status == "no_code"
    finally:
        sandbox.close()


class Solver:
    """A completer that answers each stdio prompt with the reference (or the wrong) solution."""

    def __init__(self, tokenizer, right: bool):
        self.tokenizer, self.right = tokenizer, right

    def text(self, prompt_ids) -> str:
        prompt = self.tokenizer.decode(prompt_ids)
        language = "cpp" if "Provide a C++ solution" in prompt else "python"
        problem = next(p for p in load_stdio_problems() if p.statement in prompt)
        code = reference(problem.problem_id, language) if self.right else "print(0)\n"
        return answer(language, code)

    def complete(self, prompts, max_new_tokens, stop_tokens=(), temperature=0.0, top_p=1.0, seed=0):
        return [self.tokenizer.encode(self.text(p)) for p in prompts]

    def generate(self, model, prompts, max_new_tokens, **kwargs):
        outs = self.complete(prompts, max_new_tokens)
        return outs, [[-0.5] * len(o) for o in outs]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    texts = [p.statement for p in load_stdio_problems()] + [
        reference(f"p000{i}", lang) for i in range(1, 7) for lang in ("python", "cpp")
    ]
    return train_sentencepiece(texts, 600, str(tmp_path_factory.mktemp("tok") / "t.model"))


@pytest.mark.parametrize("backend", BACKENDS[:1])
def test_cwm_eval_stdio_scores_pass_at_k(tokenizer, backend):
    args = argparse.Namespace(limit=4, samples=1, temperature=0.0, max_new_tokens=64, language=None, backend=backend)
    right = evaluate("stdio", Solver(tokenizer, True), tokenizer, args)
    wrong_result = evaluate("stdio", Solver(tokenizer, False), tokenizer, args)
    assert right["n"] == 4 and [i["id"] for i in right["items"]] == [
        "p0001/python",
        "p0001/cpp",
        "p0002/python",
        "p0002/cpp",
    ]
    assert right["summary"] == {"pass@1": 1.0} and wrong_result["summary"] == {"pass@1": 0.0}


@pytest.mark.parametrize("backend", BACKENDS[:1])
def test_stdio_is_an_rl_task(tokenizer, backend):
    mixture = TaskMixture({"stdio": 1.0, "echo": 0.0}, seed=3)
    prompts = mixture.batch(0, 3)
    assert {p.task for p in prompts} == {"stdio"}
    settings = RolloutSettings(group_size=2, max_new_tokens=64)
    with SandboxPool(lambda: make_sandbox(backend, SandboxLimits(timeout_s=30)), 2) as pool:
        for right in (True, False):
            worker = RolloutWorker(tokenizer, pool, mixture.tasks, settings, Solver(tokenizer, right).generate)
            samples, _ = worker.collect(None, 0, prompts, seed=0)
            assert [s.reward for s in samples] == [1.0 if right else -1.0] * 6, [s.info for s in samples]
