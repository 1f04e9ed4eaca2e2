"""Trace prediction: given the source and the entry call, the model writes the whole trace; compared with
the real tracer's frame by frame."""

from cwm_data import special_tokens as st
from cwm_data import trace_format
from cwm_data.tokenizer import CwmTokenizer
from cwm_data.trace_frames import CALL, LINE, RETURN
from cwm_data.tracer import trace
from cwm_jax.completion import Completer


def trace_metrics(real: list, predicted: list | None) -> dict[str, float]:
    """frame_exact: share of real frames predicted exactly at their index; locals: share of real
    (frame, name, value) triples predicted; return_value: the entry's return value; format_valid."""
    if predicted is None:
        return {"format_valid": 0.0, "frame_exact": 0.0, "locals": 0.0, "return_value": 0.0}
    exact = sum(1 for i, frame in enumerate(real) if i < len(predicted) and predicted[i] == frame)
    total = hit = 0
    for i, frame in enumerate(real):
        if frame.event in (CALL, LINE):
            other = predicted[i].locals if i < len(predicted) and predicted[i].locals is not None else {}
            total += len(frame.locals)
            hit += sum(1 for k, v in frame.locals.items() if other.get(k) == v)
    returns = [f.value for f in real if f.event == RETURN]
    predicted_returns = [f.value for f in predicted if f.event == RETURN]
    return_ok = bool(returns and predicted_returns and predicted_returns[-1] == returns[-1])
    return {"format_valid": 1.0, "frame_exact": exact / len(real), "locals": hit / total if total else 1.0,
            "return_value": float(return_ok)}


def evaluate_trace_prediction(completer: Completer, tokenizer: CwmTokenizer, cases: list[tuple[str, str, str]],
                              max_new_tokens: int = 4096) -> dict:
    """cases: (source, entry, call-args source). The first (call) frame is given, as a debugger user would."""
    items, prompts, reals = [], [], []
    for source, entry, call_args in cases:
        real = trace(source, entry, call_args)
        if not real.complete:
            continue
        prompts.append(tokenizer.encode_pieces(trace_format.prompt(real.source)
                                               + trace_format.render(real.frames[:1], complete=False)))
        reals.append(real)
    stops = (tokenizer.special_id(st.END_OF_TEXT),)
    for real, out in zip(reals, completer.complete(prompts, max_new_tokens, stops)):
        pieces = trace_format.render(real.frames[:1], False) + tokenizer.decode_pieces(out)
        try:
            predicted, complete = trace_format.parse(pieces)
            predicted = predicted if complete else None
        except trace_format.TraceFormatError:
            predicted = None
        items.append({"entry": real.frames[0].line.strip(), **trace_metrics(real.frames, predicted)})
    keys = ("format_valid", "frame_exact", "locals", "return_value")
    summary = {k: sum(i[k] for i in items) / len(items) for k in keys} if items else {}
    return {"task": "trace_prediction", "n": len(items), "summary": summary, "items": items}
