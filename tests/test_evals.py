"""Evaluations with oracle and wrong completers (metrics must move), and the pass@k estimator."""

import json
import pathlib
from math import comb
from typing import Any

import pytest
from sandbox_fixtures import BACKENDS

from cwm_data import trace_format
from cwm_data.tokenizer import train_sentencepiece
from cwm_data.tracer import mark_entry, trace
from cwm_envs.pool import SandboxPool
from cwm_envs.sandbox_factory import make_sandbox
from cwm_jax.evals.cruxeval_eval import evaluate_cruxeval
from cwm_jax.evals.pass_at_k import evaluate_pass_at_k, pass_at_k
from cwm_jax.evals.trace_prediction_eval import evaluate_trace_prediction
from cwm_tasks.cruxeval import direct_prompt, trace_source
from cwm_tasks.humaneval import HumanEvalTask, humaneval_tasks
from cwm_tasks.math_problems import MathTask

ROOT = pathlib.Path(__file__).resolve().parents[1]
CRUX = [json.loads(line) for line in (ROOT / "data/benchmarks/cruxeval/cruxeval.jsonl").read_text().splitlines()][:6]
CASES = [
    ("def f(xs):\n    t = 0\n    for x in xs:\n        t += x\n    return t\n", "f", "[1, 2, 3]"),
    ("def g(n):\n    return [i * i for i in range(n)]\n", "g", "4"),
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    texts = [s["code"] for s in CRUX] + [c[0] for c in CASES] * 3 + [t.prompt for t in humaneval_tasks()[:20]]
    return train_sentencepiece(texts, 500, str(tmp_path_factory.mktemp("tok") / "t.model"))


class Oracle:
    """Answers a prompt with `answer(prompt_text)` (or a constant when wrong=True)."""

    def __init__(self, tokenizer, answer):
        self.tokenizer, self.answer = tokenizer, answer

    def complete(self, prompts, max_new_tokens, stop_tokens=(), temperature=0.0, top_p=1.0, seed=0):
        return [self.tokenizer.encode_pieces(self.answer(self.tokenizer.decode_pieces(p))) for p in prompts]


def test_pass_at_k_estimator():
    assert pass_at_k(10, 0, 1) == 0 and pass_at_k(10, 10, 5) == 1
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - comb(7, 5) / comb(10, 5))


def test_trace_prediction_metrics(tokenizer):
    def oracle(prompt_pieces):
        source = prompt_pieces[2]
        case = next(c for c in CASES if mark_entry(c[0], c[1])[0] == source)
        real = trace(*case).frames
        return trace_format.render(real, True)[len(trace_format.render(real[:1], False)) :]

    perfect = evaluate_trace_prediction(Oracle(tokenizer, oracle), tokenizer, CASES)
    assert perfect["summary"] == {"format_valid": 1.0, "frame_exact": 1.0, "locals": 1.0, "return_value": 1.0}
    broken = evaluate_trace_prediction(Oracle(tokenizer, lambda p: ["nonsense"]), tokenizer, CASES)
    assert broken["summary"]["format_valid"] == 0.0 and broken["n"] == 2


def test_cruxeval_scored_against_the_output_without_running_the_prediction(tokenizer):
    by_prompt = {direct_prompt(s): s["output"] for s in CRUX}
    by_source = {mark_entry(trace_source(s), "main")[0]: s for s in CRUX}

    def oracle(pieces):
        text = "".join(pieces)
        for prompt, output in by_prompt.items():
            if text.endswith(prompt):
                return [output + "\n"]
        sample = by_source[pieces[2]]
        real = trace(trace_source(sample), "main").frames
        return trace_format.render(real, True)

    right = evaluate_cruxeval(Oracle(tokenizer, oracle), tokenizer, CRUX)
    wrong = evaluate_cruxeval(Oracle(tokenizer, lambda p: ["None\n"]), tokenizer, CRUX)
    # Executed as `assert f(input) == PREDICTION`, this exit would have passed every sample.
    cheat = evaluate_cruxeval(Oracle(tokenizer, lambda p: ["__import__('os')._exit(0)\n"]), tokenizer, CRUX)
    assert right["summary"] == {"direct": 1.0, "via_trace": 1.0}
    assert wrong["summary"]["direct"] < 1.0 and wrong["summary"]["via_trace"] == 0.0
    assert cheat["summary"]["direct"] == 0.0


def test_math_pass_at_k(tokenizer):
    problems: list[dict[str, Any]] = [
        {"id": i, "problem": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(4)
    ]
    answers = {p["problem"]: p["answer"] for p in problems}

    def oracle(pieces):
        problem = next(q for q in answers if q in "".join(pieces))
        return [
            f"Add them.\n</think>\nThe sum is $\\boxed{{{answers[problem]}}}$.",
        ]

    task = MathTask(problems=problems)
    right = evaluate_pass_at_k(Oracle(tokenizer, oracle), tokenizer, task, task.prompts(), None, samples=2)
    wrong = evaluate_pass_at_k(Oracle(tokenizer, lambda p: ["\\boxed{-1}"]), tokenizer, task, task.prompts(), None)
    assert right["summary"] == {"pass@1": 1.0} and wrong["summary"]["pass@1"] == 0


@pytest.mark.parametrize("backend", BACKENDS[:1])
def test_humaneval_pass_at_k_through_sandboxes(tokenizer, backend):
    task = HumanEvalTask()
    prompts = task.prompts()[:8]
    solutions = {t.prompt: t.canonical_solution for t in task.tasks[:8]}

    def oracle(pieces):
        return [solutions["".join(pieces[1:])] + "\n\ndef unrelated():\n    pass\n"]  # cut at the next def

    with SandboxPool(lambda: make_sandbox(backend), 2) as pool:
        right = evaluate_pass_at_k(Oracle(tokenizer, oracle), tokenizer, task, prompts, pool)
        wrong = evaluate_pass_at_k(Oracle(tokenizer, lambda p: ["    return None\n"]), tokenizer, task, prompts, pool)
    assert right["summary"] == {"pass@1": 1.0} and wrong["summary"] == {"pass@1": 0.0}
