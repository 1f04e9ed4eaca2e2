"""Rewards on real task sets: HumanEval, AIME/AMC/GSM8K answers, stdin/stdout programs, SWE repo tasks."""

import difflib
import json
import pathlib
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sandbox_fixtures import BACKENDS, sandbox_of

from cwm_envs.pool import SandboxPool
from cwm_tasks import math_verify_pool
from cwm_tasks.humaneval import grade_function, humaneval_tasks
from cwm_tasks.math_problems import grade_math, last_boxed
from cwm_tasks.math_verify_pool import compare_in_worker
from cwm_tasks.stdio_programs import StdioTest, grade_stdio
from cwm_tasks.swe import grade_swe, patch_similarity, shipped_swe_tasks, similarity_reward

MATH = pathlib.Path(__file__).resolve().parents[1] / "data" / "benchmarks" / "math"


@pytest.mark.bwrap
def test_humaneval_canonical_solutions_pass_and_broken_ones_fail():
    tasks = humaneval_tasks()
    assert len(tasks) == 164
    with SandboxPool(lambda: sandbox_of("bwrap", timeout_s=20), 4) as pool:

        def grade(task, completion):
            with pool.sandbox() as sandbox:
                return grade_function(
                    sandbox, task.program(completion), task.tests, task.entry_point, prelude=task.prompt
                )

        with ThreadPoolExecutor(4) as threads:
            good = list(threads.map(lambda t: grade(t, t.canonical_solution), tasks))
            broken = list(threads.map(lambda t: grade(t, "    return None\n"), tasks))
            raising = list(threads.map(lambda t: grade(t, "    raise RuntimeError('broken')\n"), tasks))
    assert [t.task_id for t, r in zip(tasks, good, strict=True) if r.reward != 1] == []
    assert all(r.tests and all(o.passed for o in r.tests) for r in good)
    assert [t.task_id for t, r in zip(tasks, broken, strict=True) if r.reward != -1] == []
    assert [t.task_id for t, r in zip(tasks, raising, strict=True) if r.reward != -1] == []
    assert any(0 < sum(o.passed for o in r.tests) < len(r.tests) for r in broken)  # per-test detail is kept


def _references():
    rows = [("aime24", json.loads(line)["answer"]) for line in (MATH / "aime24.jsonl").read_text().splitlines()]
    rows += [("amc23", json.loads(line)["answer"]) for line in (MATH / "amc23.jsonl").read_text().splitlines()]
    rows += [
        ("gsm8k", json.loads(line)["answer"].split("####")[-1].strip().replace(",", ""))
        for line in (MATH / "gsm8k_test.jsonl").read_text().splitlines()
    ]
    return [(source, str(answer)) for source, answer in rows]


def reply(answer: str) -> str:
    """A response in the release's format: reasoning, </think>, one $\\boxed{...}$."""
    return f"Let me work it out.\n</think>\nThe answer is $\\boxed{{{answer}}}$."


def test_math_references_pass_in_equivalent_forms_and_fail_when_perturbed():
    refs = _references()
    assert len(refs) == 30 + 40 + 1319
    for source, answer in refs:
        value = float(answer)
        assert grade_math(reply(answer), answer).reward == 1, (source, answer)
        other = f"\\frac{{{int(value * 2)}}}{{2}}" if value == int(value) else f"{value:.6f}"
        assert grade_math(reply(other), answer).reward == 1, (source, answer, other)
        assert grade_math(reply(f"{value + 1:g}"), answer).reward == -1, (source, answer)


def test_math_equivalence_beyond_strings():
    assert grade_math(reply("\\frac{1}{2}"), "0.5").reward == 1
    assert grade_math(reply("\\sqrt{8}"), "2\\sqrt{2}").reward == 1
    assert grade_math(reply("x^2 + 2x + 1"), "(x+1)^2").reward == 1
    assert grade_math(reply("3"), "2").reward == -1
    assert grade_math("no box here: 2", "2").status == "no_answer"
    assert last_boxed("\\boxed{1} then \\boxed{\\frac{a}{b}}") == "\\frac{a}{b}"
    # The lenient reading is an explicit option: an answer boxed without $...$ or </think> counts only there.
    assert grade_math("so \\boxed{3}", "3").status == "no_answer"
    assert grade_math("so \\boxed{3}", "3", extraction="lenient").reward == 1


# sympy would hold the GIL computing it; Math-Verify's SIGALRM ends it
TOWER = "done\n</think>\n$\\boxed{9^{9^{9^{9}}}}$"


def test_math_grading_from_rollout_threads_cannot_freeze_the_caller():
    # Graded in this process off the main thread, TOWER froze the whole process (no SIGALRM, GIL held).
    threads = ThreadPoolExecutor(4)
    futures = [threads.submit(grade_math, response, "2") for response in (TOWER, TOWER, reply("2"), reply("3"))]
    ticks = 0
    while not all(f.done() for f in futures) and ticks < 12_000:
        time.sleep(0.01)  # this thread keeps running while the workers compute
        ticks += 1
    results = [f.result(timeout=0) for f in futures]
    assert [r.reward for r in results] == [-1, -1, 1, -1] and ticks > 0


def test_a_comparison_past_its_deadline_kills_its_worker_and_the_next_one_works():
    assert compare_in_worker("\\boxed{9^{9^{9^{9}}}}", "2", deadline_s=0.5) is None
    assert compare_in_worker("\\boxed{\\frac{1}{2}}", "0.5") == {"equal": True}
    assert all(w.process.poll() is None for w in math_verify_pool._all)  # the killed one is gone from the pool


PY_SUM = "n = int(input())\nprint(sum(int(x) for x in input().split()[:n]))\n"
CPP_SUM = (
    "#include <iostream>\nint main(){int n; long long s=0, x; std::cin>>n; "
    "for(int i=0;i<n;i++){std::cin>>x; s+=x;} std::cout<<s<<std::endl;}\n"
)
SUM_TESTS = [StdioTest("3\n1 2 3\n", "6\n"), StdioTest("1\n-5\n", "-5"), StdioTest("2\n10 20\n", "30\n\n")]


@pytest.mark.parametrize("backend", BACKENDS)
def test_stdin_stdout_programs_python_and_cpp(backend):
    sandbox = sandbox_of(backend, timeout_s=60)
    try:
        for language, source in (("python", PY_SUM), ("cpp", CPP_SUM)):
            result = grade_stdio(sandbox, source, language, SUM_TESTS)
            assert result.reward == 1 and len(result.tests) == 3, (language, result)
            wrong = grade_stdio(
                sandbox, source.replace("s+=x", "s+=x+1").replace("int(x)", "int(x) + 1"), language, SUM_TESTS
            )
            assert wrong.reward == -1 and not any(t.passed for t in wrong.tests)
        broken = grade_stdio(sandbox, "int main( {", "cpp", SUM_TESTS)
        assert (broken.reward, broken.status) == (-1, "compile_error")
    finally:
        sandbox.close()


def _patch_with(task, path: str, old: str, new: str) -> str:
    before = task.files[path].decode()
    after = before.replace(old, new)
    assert after != before
    body = "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True), f"a/{path}", f"b/{path}"))
    return f"diff --git a/{path} b/{path}\n{body}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_swe_tasks_graded_by_fail_to_pass_and_pass_to_pass(backend):
    tasks = {t.instance_id: t for t in shipped_swe_tasks()}
    calc, slug = tasks["calc-divide-by-zero"], tasks["slugify-unicode"]
    breaks_p2p = (
        _patch_with(calc, "calc.py", "    return a + b", "    return a - b") + calc.gold_patch.split("\n", 1)[1]
    )
    cases = [
        (calc, calc.gold_patch, 1, "passed"),
        (slug, slug.gold_patch, 1, "passed"),
        (
            calc,
            _patch_with(
                calc,
                "calc.py",
                "    return a / b",
                "    if b == 0:\n        return None\n    return a / b\n    return a + b",
            ),
            1,
            "passed",
        ),
        (calc, breaks_p2p, -1, "failed"),
        (calc, "", -1, "empty_patch"),
        (slug, _patch_with(slug, "textutil/slug.py", "text.lower()", "text.upper()"), -1, "failed"),
        (
            calc,
            "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1 +1 @@\n-nope\n+x\n",
            -1,
            "patch_failed",
        ),
    ]
    for task, patch, reward, status in cases:
        sandbox = sandbox_of(backend, timeout_s=120)
        try:
            result = grade_swe(sandbox, task, patch)
        finally:
            sandbox.close()
        assert (result.reward, result.status) == (reward, status), (task.instance_id, result.log[-500:])
        if patch is breaks_p2p:  # the fix works (FAIL_TO_PASS passes) but it breaks add (PASS_TO_PASS)
            outcome = {t.name: t.passed for t in result.tests}
            assert outcome["test_calc.py::test_divide_by_zero"] and not outcome["test_calc.py::test_add"]


def test_patch_similarity_reward():
    calc = next(t for t in shipped_swe_tasks() if t.instance_id == "calc-divide-by-zero")
    assert patch_similarity(calc.gold_patch, calc.gold_patch) == 1.0
    from cwm_tasks.reward_result import RewardResult

    failed = RewardResult(-1.0, "failed")
    assert similarity_reward(failed, calc.gold_patch, calc.gold_patch) == 0.0  # -1 + 0.5 x 2
    assert similarity_reward(failed, "diff --git a/other.py b/other.py\n+x\n", calc.gold_patch) == -1.0
    assert similarity_reward(RewardResult(1.0, "passed"), "", calc.gold_patch) == 1.0
