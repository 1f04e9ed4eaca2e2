"""CWM's tool-call syntax: `<tool: NAME>` newline BODY newline `</tool>` (CWM.md section 2.2 and 4.2).

NAME is letters and underscores; an assistant turn holds at most one call.
"""

import dataclasses
import re

TOOL_CALL = re.compile(r"<tool: ([A-Za-z_]+)>\n(.*?)\n</tool>", re.DOTALL)
AGENT_TOOLS = ("bash", "edit", "create", "submit")


@dataclasses.dataclass(frozen=True)
class ToolCall:
    name: str
    body: str


def format_tool_call(name: str, body: str) -> str:
    return f"<tool: {name}>\n{body}\n</tool>"


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
