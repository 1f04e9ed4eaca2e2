"""HumanEval pass@k through the sandboxes: completion-style prompts, cut at the next top-level statement."""

from concurrent.futures import ThreadPoolExecutor

from cwm_data import special_tokens as st
from cwm_data.special_tokens import special
from cwm_data.tokenizer import CwmTokenizer
from cwm_envs.pool import SandboxPool
from cwm_envs.tasks.humaneval import FunctionTask
from cwm_envs.tasks.python_tests import grade_function
from cwm_jax.completion import Completer
from cwm_jax.evals.pass_at_k import mean_pass_at_k

STOP_STRINGS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ")


def cut_completion(text: str) -> str:
    cut = min((text.find(s) for s in STOP_STRINGS if s in text), default=len(text))
    return text[:cut]


def evaluate_humaneval(completer: Completer, tokenizer: CwmTokenizer, tasks: list[FunctionTask], pool: SandboxPool,
                       samples: int = 1, temperature: float = 0.0, max_new_tokens: int = 512,
                       ks: tuple[int, ...] = (1, 5, 10)) -> dict:
    prompts = [tokenizer.encode_pieces([special(st.BEGIN_OF_TEXT), t.prompt]) for t in tasks]
    stops = (tokenizer.special_id(st.END_OF_TEXT),)
    correct = [0] * len(tasks)

    def grade(args):
        task, completion = args
        with pool.sandbox() as sandbox:
            return grade_function(sandbox, task.program(completion), task.tests, task.entry_point).passed

    for s in range(samples):
        outs = completer.complete(prompts, max_new_tokens, stops, temperature=temperature, top_p=0.95, seed=s)
        completions = [cut_completion(tokenizer.decode(out)) for out in outs]
        with ThreadPoolExecutor(pool.size) as threads:
            for i, passed in enumerate(threads.map(grade, zip(tasks, completions))):
                correct[i] += passed
    return {"task": "humaneval", "n": len(tasks), "samples": samples, "summary": mean_pass_at_k(correct, samples, ks),
            "items": [{"task_id": t.task_id, "correct": c} for t, c in zip(tasks, correct)]}
