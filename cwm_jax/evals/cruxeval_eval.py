"""CRUXEval output prediction scored against f(input), directly and via a predicted trace (cwm_tasks.cruxeval
has the prompts, answers and the check, which runs nothing the model wrote)."""

from cwm_data import special_tokens as st
from cwm_data.tokenizer import CwmTokenizer
from cwm_jax.completion import Completer
from cwm_tasks.cruxeval import direct_answer, direct_pieces, prediction_matches, trace_answer, trace_pieces


def evaluate_cruxeval(
    completer: Completer,
    tokenizer: CwmTokenizer,
    samples: list[dict],
    max_new_tokens: int = 256,
    trace_tokens: int = 4096,
) -> dict:
    stops = (tokenizer.special_id(st.END_OF_TEXT),)
    direct = completer.complete([tokenizer.encode_pieces(direct_pieces(s)) for s in samples], max_new_tokens, stops)
    traced = completer.complete([tokenizer.encode_pieces(trace_pieces(s)) for s in samples], trace_tokens, stops)
    items = []
    for sample, direct_out, trace_out in zip(samples, direct, traced, strict=True):
        answer = direct_answer(tokenizer.decode(direct_out))
        via_trace = trace_answer(tokenizer.decode_pieces(trace_out))
        items.append(
            {
                "id": sample["id"],
                "direct": answer,
                "direct_correct": bool(answer) and prediction_matches(sample, answer),
                "via_trace": via_trace,
                "via_trace_correct": via_trace is not None and prediction_matches(sample, via_trace),
            }
        )
    n = len(items)
    return {
        "task": "cruxeval_output",
        "n": n,
        "summary": {
            "direct": sum(i["direct_correct"] for i in items) / n,
            "via_trace": sum(i["via_trace_correct"] for i in items) / n,
        },
        "items": items,
    }
