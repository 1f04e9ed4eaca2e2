"""CRUXEval output prediction, scored by executing the predicted assertion in a sandbox: directly (the model
completes `assert f(input) == `) and via a predicted trace (its last return value)."""

from cwm_data import special_tokens as st
from cwm_data import trace_format
from cwm_data.special_tokens import SpecialToken, special
from cwm_data.tokenizer import CwmTokenizer
from cwm_data.tracer import mark_entry
from cwm_envs.sandbox import Sandbox
from cwm_jax.completion import Completer


def direct_prompt(sample: dict) -> str:
    return f"{sample['code']}\nassert f({sample['input']}) == "


def trace_source(sample: dict) -> str:
    """The function plus a main() calling it, the entry point of the predicted trace."""
    return f"{sample['code']}\n\ndef main():\n    return f({sample['input']})\n"


def assertion_holds(sandbox: Sandbox, sample: dict, predicted: str) -> bool:
    program = f"{sample['code']}\nassert f({sample['input']}) == {predicted}\n"
    sandbox.put_file("check.py", program)
    return sandbox.exec(["python3", "check.py"], timeout=10).ok


def evaluate_cruxeval(completer: Completer, tokenizer: CwmTokenizer, samples: list[dict], sandbox: Sandbox,
                      max_new_tokens: int = 256, trace_tokens: int = 4096) -> dict:
    bos = special(st.BEGIN_OF_TEXT)
    direct = completer.complete([tokenizer.encode_pieces([bos, direct_prompt(s)]) for s in samples], max_new_tokens,
                                (tokenizer.special_id(st.END_OF_TEXT),))
    marked = [mark_entry(trace_source(s), "main")[0] for s in samples]
    traced = completer.complete([tokenizer.encode_pieces(trace_format.prompt(m)) for m in marked], trace_tokens,
                                (tokenizer.special_id(st.END_OF_TEXT),))
    items = []
    for sample, direct_out, trace_out in zip(samples, direct, traced):
        answer = tokenizer.decode(direct_out).split("\n")[0].strip()
        via_trace = _last_return(tokenizer.decode_pieces(trace_out))
        items.append({"id": sample["id"], "direct": answer,
                      "direct_correct": bool(answer) and assertion_holds(sandbox, sample, answer),
                      "via_trace": via_trace,
                      "via_trace_correct": via_trace is not None and assertion_holds(sandbox, sample, via_trace)})
    n = len(items)
    return {"task": "cruxeval_output", "n": n,
            "summary": {"direct": sum(i["direct_correct"] for i in items) / n,
                        "via_trace": sum(i["via_trace_correct"] for i in items) / n}, "items": items}


def _last_return(pieces: list[str]) -> str | None:
    """The value of the last return frame of a predicted trace, read up to where it stops parsing, or None."""
    try:
        frames, _ = trace_format.parse(pieces)
    except trace_format.TraceFormatError as e:
        ends = [i for i, p in enumerate(pieces[:e.piece]) if p == st.FRAME_SEP and isinstance(p, SpecialToken)]
        try:
            frames, _ = trace_format.parse(pieces[:ends[-1] + 1]) if ends else ([], False)
        except trace_format.TraceFormatError:
            frames = []
    returns = [f.value for f in frames if f.event == "return"]
    return returns[-1] if returns else None
