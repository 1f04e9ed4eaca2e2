"""CWM's special tokens: 256 ids after the regular vocabulary (128000 + offset in the released tokenizer).

Names and offsets follow facebookresearch/cwm `cwm/text/tokenizers.py` (CWM.md section 2.1); every unused
offset is `<|reserved_special_token_{offset}|>`.
"""

NUM_SPECIAL = 256

NAMED_OFFSETS = {
    "<|begin_of_text|>": 0,
    "<|end_of_text|>": 1,
    "<|pad|>": 4,
    "<|start_header_id|>": 6,
    "<|end_header_id|>": 7,
    "<|eom_id|>": 8,
    "<|eot_id|>": 9,
    "<|frame_sep|>": 100,
    "<|action_sep|>": 101,
    "<|return_sep|>": 102,
    "<|call_sep|>": 103,
    "<|line_sep|>": 104,
    "<|exception_sep|>": 105,
    "<|arg_sep|>": 106,
    "<|trace_context_start|>": 107,
    "<|reasoning_thinking_start|>": 120,
    "<|reasoning_thinking_end|>": 121,
}

BEGIN_OF_TEXT = "<|begin_of_text|>"
END_OF_TEXT = "<|end_of_text|>"
PAD = "<|pad|>"
START_HEADER = "<|start_header_id|>"
END_HEADER = "<|end_header_id|>"
EOM = "<|eom_id|>"
EOT = "<|eot_id|>"
FRAME_SEP = "<|frame_sep|>"
ACTION_SEP = "<|action_sep|>"
RETURN_SEP = "<|return_sep|>"
CALL_SEP = "<|call_sep|>"
LINE_SEP = "<|line_sep|>"
EXCEPTION_SEP = "<|exception_sep|>"
ARG_SEP = "<|arg_sep|>"
TRACE_CONTEXT_START = "<|trace_context_start|>"


def special_token_strings() -> list[str]:
    """All 256 special-token strings, indexed by offset."""
    names = {offset: name for name, offset in NAMED_OFFSETS.items()}
    return [names.get(i, f"<|reserved_special_token_{i}|>") for i in range(NUM_SPECIAL)]


class SpecialToken(str):
    """A piece of token text that is one special token (not text that happens to spell it).

    Formats build lists of pieces: plain `str` pieces are encoded as ordinary text, SpecialToken pieces as
    their id, so a user's code containing "<|frame_sep|>" never becomes a special token.
    """


def special(name: str) -> SpecialToken:
    if name not in NAMED_OFFSETS and not name.startswith("<|reserved_special_token_"):
        raise KeyError(f"not a CWM special token: {name!r}")
    return SpecialToken(name)
