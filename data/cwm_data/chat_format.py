"""CWM's chat format (CWM.md section 2.2): the one place that writes or reads a dialog.

A turn is `<|start_header_id|>ROLE<|end_header_id|>` + "\\n\\n" + body + `<|eot_id|>`; ROLE is system, user,
assistant or `tool: NAME` (a tool's observation). A generation prompt is `<|begin_of_text|>`, the turns, and an
open assistant header, which a reasoning prompt follows with "<think>\\n". An assistant turn calls at most one
tool as `<tool: NAME>` newline BODY newline `</tool>`, NAME one of the agent tools (CWM.md section 4.2).

Everything here is token pieces (cwm_data.special_tokens): special tokens are SpecialToken pieces, bodies
plain text, so a body that spells a special token never becomes one.
"""

import dataclasses
import re

from cwm_data import special_tokens as st
from cwm_data.special_tokens import special

REASONING_SYSTEM_PROMPT = (
    "You are a helpful AI assistant. You always reason before responding, using the "
    "following format:\n<think>\nyour internal reasoning\n</think>\nyour external response"
)
THINK_START = "<think>\n"

# Special tokens that end an assistant's turn (and a plain completion) when generating.
STOP_TOKENS = (st.EOT, st.END_OF_TEXT)

AGENT_TOOLS = ("bash", "edit", "create", "submit")
TOOL_CALL = re.compile(r"<tool: ([A-Za-z_]+)>\n(.*?)\n</tool>", re.DOTALL)


def tool_role(name: str) -> str:
    return f"tool: {name}"


def header(role: str) -> list[str]:
    return [special(st.START_HEADER), role, special(st.END_HEADER), "\n\n"]


def body(text: str) -> list[str]:
    return [text, special(st.EOT)]


def turn(role: str, text: str) -> list[str]:
    return header(role) + body(text)


def assistant_start(reasoning: bool) -> list[str]:
    """The open assistant turn the model continues; with reasoning it starts inside "<think>"."""
    return header("assistant") + ([THINK_START] if reasoning else [])


def generation_prompt(messages: list[tuple[str, str]], reasoning: bool) -> list[str]:
    """`<|begin_of_text|>`, a turn per (role, text), then the assistant's open turn."""
    pieces: list[str] = [special(st.BEGIN_OF_TEXT)]
    for role, text in messages:
        pieces += turn(role, text)
    return pieces + assistant_start(reasoning)


def observation(role: str, text: str) -> list[str]:
    """What an environment appends after an assistant turn: its message, then the assistant's next turn."""
    return turn(role, text) + assistant_start(reasoning=False)


@dataclasses.dataclass(frozen=True)
class ToolCall:
    name: str
    body: str


def format_tool_call(name: str, text: str) -> str:
    return f"<tool: {name}>\n{text}\n</tool>"


def parse_tool_calls(text: str) -> list[ToolCall]:
    """Every well-formed call in `text`, in order."""
    return [ToolCall(m.group(1), m.group(2)) for m in TOOL_CALL.finditer(text)]


def parse_single_call(text: str) -> tuple[ToolCall | None, str | None]:
    """(the call, None) for a turn with exactly one call; (None, why) otherwise (no call is not an error)."""
    calls = parse_tool_calls(text)
    if len(calls) > 1:
        return None, f"{len(calls)} tool calls in one turn; exactly one is allowed"
    if not calls and "<tool:" in text:
        return None, "a '<tool:' tag that is not '<tool: NAME>', newline, body, newline, '</tool>'"
    return (calls[0] if calls else None), None
