"""pass@k of a task family with a problem set: every prompt sampled n times, every completion graded by the
family's grader (in a sandbox when it needs one); the unbiased estimator (Chen et al., 2021):
1 - C(n - c, k) / C(n, k) for n samples, c correct."""

import math
from concurrent.futures import ThreadPoolExecutor

from cwm_data.tokenizer import CwmTokenizer
from cwm_envs.pool import SandboxPool
from cwm_jax.completion import Completer
from cwm_tasks.task import ProblemSet, Prompt


def pass_at_k(n: int, c: int, k: int) -> float:
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def mean_pass_at_k(correct_counts: list[int], n: int, ks: tuple[int, ...]) -> dict[str, float]:
    return {f"pass@{k}": sum(pass_at_k(n, c, k) for c in correct_counts) / len(correct_counts) for k in ks if k <= n}


def evaluate_pass_at_k(
    completer: Completer,
    tokenizer: CwmTokenizer,
    task: ProblemSet,
    prompts: list[Prompt],
    pool: SandboxPool | None,
    samples: int = 1,
    temperature: float = 0.0,
    max_new_tokens: int = 1024,
    ks: tuple[int, ...] = (1, 5, 10),
) -> dict:
    """`pool` holds the sandboxes graders run in (None for a family that needs none)."""
    ids = [tokenizer.encode_pieces(p.pieces) for p in prompts]
    stops = tuple(tokenizer.special_id(name) for name in task.stops)
    correct = [0] * len(prompts)

    def grade(job: tuple[Prompt, str]) -> bool:
        prompt, completion = job
        if pool is None:
            return task.grade(None, completion, prompt.meta).passed
        with pool.sandbox() as sandbox:
            return task.grade(sandbox, completion, prompt.meta).passed

    for s in range(samples):
        outs = completer.complete(ids, max_new_tokens, stops, temperature=temperature, top_p=0.95, seed=s)
        completions = [tokenizer.decode(out) for out in outs]
        with ThreadPoolExecutor(pool.size if pool else 1) as threads:
            for i, passed in enumerate(threads.map(grade, zip(prompts, completions, strict=True))):
                correct[i] += passed
    return {
        "task": task.name,
        "n": len(prompts),
        "samples": samples,
        "summary": mean_pass_at_k(correct, samples, ks),
        "items": [{"id": p.meta["id"], "correct": c} for p, c in zip(prompts, correct, strict=True)],
    }
