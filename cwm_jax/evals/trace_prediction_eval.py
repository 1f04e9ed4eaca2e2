"""Trace prediction: the model writes the whole trace from the source and the first frame; scored against
the real tracer's frame by frame (cwm_tasks.trace_prediction has the cases, prompt and metrics)."""

from cwm_data import special_tokens as st
from cwm_data.tokenizer import CwmTokenizer
from cwm_jax.completion import Completer
from cwm_tasks.trace_prediction import METRICS, predicted_frames, prediction_prompt, real_traces, trace_metrics


def evaluate_trace_prediction(
    completer: Completer, tokenizer: CwmTokenizer, cases: list[tuple[str, str, str]], max_new_tokens: int = 4096
) -> dict:
    """cases: (source, entry, call-args source); those whose real trace does not complete are left out."""
    reals = real_traces(cases)
    prompts = [tokenizer.encode_pieces(prediction_prompt(real)) for real in reals]
    outs = completer.complete(prompts, max_new_tokens, (tokenizer.special_id(st.END_OF_TEXT),))
    metrics = [
        trace_metrics(real.frames, predicted_frames(real, tokenizer.decode_pieces(out)))
        for real, out in zip(reals, outs, strict=True)
    ]
    items = [{"entry": real.frames[0].line.strip(), **m} for real, m in zip(reals, metrics, strict=True)]
    summary = {k: sum(m[k] for m in metrics) / len(metrics) for k in METRICS} if metrics else {}
    return {"task": "trace_prediction", "n": len(items), "summary": summary, "items": items}
