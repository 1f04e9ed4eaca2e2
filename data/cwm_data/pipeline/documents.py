"""One record -> one training document: token ids and a per-token loss mask (1 = trained as a target).

Record kinds (each a JSON object; the source's `kind` says which):
- trace: {"source": marked source, "frames": [...], "status": ...} as the trace generators write it;
  the document is the trace-prediction prompt followed by the trace, all of it trained.
- agent: an episode (agent_format.py); assistant turns trained, observations kept at random.
- text: {"text": ...}; <|begin_of_text|> text <|end_of_text|>, all trained.
A record that does not parse raises CwmError saying why.
"""

import json

import numpy as np

from cwm_common.errors import CwmError
from cwm_data import special_tokens as st
from cwm_data import trace_format
from cwm_data.agent_format import render_episode, validate_episode
from cwm_data.special_tokens import special
from cwm_data.tokenizer import CwmTokenizer
from cwm_data.trace_frames import COMPLETE, Frame

KINDS = ("trace", "agent", "text")


def _fields(record: dict, kind: str, *names: str):
    missing = [n for n in names if n not in record]
    if missing:
        raise CwmError(f"{kind} record lacks field(s) {', '.join(missing)}")
    return [record[n] for n in names]


def trace_pieces(record: dict) -> list[str]:
    source, frames, status = _fields(record, "trace", "source", "frames", "status")
    try:
        frames = [Frame.from_json(f) for f in frames]
        return trace_format.prompt(source) + trace_format.render(frames, status in COMPLETE)
    except (KeyError, TypeError, AttributeError) as e:
        raise CwmError(f"trace record has a malformed frame ({type(e).__name__}: {e})") from None
    except trace_format.TraceFormatError as e:
        raise CwmError(f"trace record is not a valid trace: {e}") from None


def to_document(
    raw: bytes | str, kind: str, tokenizer: CwmTokenizer, keep_observation_prob: float = 0.0, seed: int = 0
) -> dict[str, np.ndarray]:
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CwmError(f"{kind} record is not valid JSON ({e})") from None
    if not isinstance(record, dict):
        raise CwmError(f"{kind} record is not a JSON object")
    if kind == "trace":
        ids = tokenizer.encode_pieces(trace_pieces(record))
        mask = [0] + [1] * (len(ids) - 1)
    elif kind == "agent":
        ids, mask = render_episode(validate_episode(record), tokenizer, keep_observation_prob, seed)
    elif kind == "text":
        (text,) = _fields(record, "text", "text")
        if not isinstance(text, str):
            raise CwmError("text record field 'text' is not a string")
        ids = tokenizer.encode_pieces([special(st.BEGIN_OF_TEXT), text, special(st.END_OF_TEXT)])
        mask = [0] + [1] * (len(ids) - 1)
    else:
        raise CwmError(f"unknown record kind {kind!r}; known: {', '.join(KINDS)}")
    return {"tokens": np.asarray(ids, np.int32), "loss_mask": np.asarray(mask, np.int32)}
