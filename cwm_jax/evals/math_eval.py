"""Math pass@k (AIME 2024, AMC 2023, GSM8K) graded by the envs' \\boxed{} + Math-Verify reward."""

from cwm_data import special_tokens as st
from cwm_data.special_tokens import special
from cwm_data.tokenizer import CwmTokenizer
from cwm_envs.tasks.math_answer import grade_math
from cwm_jax.completion import Completer
from cwm_jax.evals.pass_at_k import mean_pass_at_k

SYSTEM = ("You are a helpful AI assistant. You always reason before responding, using the following format:\n"
          "<think>\nyour internal reasoning\n</think>\nyour external response")


def math_prompt(problem: str) -> list[str]:
    """CWM's chat format with the reasoning system prompt; the assistant turn starts with "<think>\\n"."""
    def turn(role, body):
        return [special(st.START_HEADER), role, special(st.END_HEADER), "\n\n", body, special(st.EOT)]
    return ([special(st.BEGIN_OF_TEXT)] + turn("system", SYSTEM)
            + turn("user", f"{problem}\nWrap your answer in $\\boxed{{}}$.")
            + [special(st.START_HEADER), "assistant", special(st.END_HEADER), "\n\n", "<think>\n"])


def evaluate_math(completer: Completer, tokenizer: CwmTokenizer, problems: list[dict], samples: int = 1,
                  temperature: float = 0.0, max_new_tokens: int = 2048, ks: tuple[int, ...] = (1, 5, 10)) -> dict:
    """problems: [{"id", "problem", "answer"}]."""
    prompts = [tokenizer.encode_pieces(math_prompt(p["problem"])) for p in problems]
    stops = (tokenizer.special_id(st.EOT), tokenizer.special_id(st.END_OF_TEXT))
    correct = [0] * len(problems)
    for s in range(samples):
        outs = completer.complete(prompts, max_new_tokens, stops, temperature=temperature, top_p=0.95, seed=s)
        for i, out in enumerate(outs):
            correct[i] += grade_math(tokenizer.decode(out), str(problems[i]["answer"])).passed
    return {"task": "math", "n": len(problems), "samples": samples,
            "summary": mean_pass_at_k(correct, samples, ks),
            "items": [{"id": p["id"], "correct": c} for p, c in zip(problems, correct)]}
