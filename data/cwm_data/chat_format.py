"""CWM's chat format, as the release renders it (cwm/text/tokenizers.py, cwm/rl/envs/prompts.py): the one place
that writes or reads a dialog.

A turn is `<|start_header_id|>ROLE<|end_header_id|>` + "\\n\\n" + body + `<|eot_id|>`; ROLE is system, user,
assistant or `tool: NAME` (a tool's result). Bodies are stripped of surrounding whitespace, except a tool's
result. A generation prompt is `<|begin_of_text|>`, the turns, and an open assistant header, which a reasoning
prompt follows with "<think>\\n" (the release re-opens every assistant turn so in its agent environment).
Generation stops at `<|eom_id|>`, `<|eot_id|>` or `<|end_of_text|>`.

An assistant turn that acts writes its reasoning, "</think>", then exactly one `<tool: NAME>` newline BODY
newline `</tool>`; `parse_tool_call` applies the release's checks in its order and with its messages.

Everything here is token pieces (cwm_data.special_tokens): special tokens are SpecialToken pieces, bodies
plain text, so a body that spells a special token never becomes one.
"""

import dataclasses
import re

from cwm_data import special_tokens as st
from cwm_data.special_tokens import special

ASSISTANT_DESCRIPTION = "You are a helpful AI assistant."
REASONING_SYSTEM_PROMPT = (
    f"{ASSISTANT_DESCRIPTION} You always reason before responding, using the following format:\n\n"
    "<think>\nyour internal reasoning\n</think>\nyour external response"
)
THINK_START = "<think>\n"
THINK_END = "</think>"

# Special tokens that end an assistant's turn (and a plain completion) when generating.
STOP_TOKENS = (st.EOM, st.EOT, st.END_OF_TEXT)

AGENT_TOOLS = ("bash", "edit", "create", "submit")
TOOL_CALL = re.compile(r"<tool:\s([a-zA-Z_]+)>\n(.*?)\n</tool>", re.DOTALL)


def system_prompt(environment: str | None = None) -> str:
    """The reasoning system prompt, with an "# Environment" section when the task has one."""
    if not environment:
        return REASONING_SYSTEM_PROMPT
    return f"{REASONING_SYSTEM_PROMPT}\n\n# Environment\n\n{environment.strip()}"


def tool_role(name: str) -> str:
    return f"tool: {name}"


def header(role: str) -> list[str]:
    return [special(st.START_HEADER), role.strip(), special(st.END_HEADER), "\n\n"]


def body(role: str, text: str) -> list[str]:
    """A finished turn's body: stripped unless it is a tool's result, then `<|eot_id|>`."""
    return [text if role.startswith("tool:") else text.strip(), special(st.EOT)]


def turn(role: str, text: str) -> list[str]:
    return header(role) + body(role, text)


def assistant_start(reasoning: bool) -> list[str]:
    """The open assistant turn the model continues; with reasoning it starts inside "<think>"."""
    return header("assistant") + ([THINK_START] if reasoning else [])


def generation_prompt(messages: list[tuple[str, str]], reasoning: bool) -> list[str]:
    """`<|begin_of_text|>`, a turn per (role, text), then the assistant's open turn."""
    pieces: list[str] = [special(st.BEGIN_OF_TEXT)]
    for role, text in messages:
        pieces += turn(role, text)
    return pieces + assistant_start(reasoning)


def observation(role: str, text: str, reasoning: bool) -> list[str]:
    """What an environment appends after an assistant turn: its message, then the assistant's next turn."""
    return turn(role, text) + assistant_start(reasoning)


@dataclasses.dataclass(frozen=True)
class ToolCall:
    name: str
    body: str


class FormatError(ValueError):
    """An assistant turn that is not reasoning, "</think>", and exactly one well-formed tool call."""


def format_tool_call(name: str, text: str) -> str:
    return f"<tool: {name}>\n{text}\n</tool>"


def after_reasoning(text: str) -> str:
    """What a reasoning turn says after its first "</think>" (all of it when there is none)."""
    return text.split(THINK_END, 1)[-1]


def parse_tool_call(text: str, reasoning: bool) -> ToolCall:
    """The one tool call of an assistant turn, or FormatError with the release's message. With reasoning only
    the text after "</think>" counts (a call inside the reasoning is not a call)."""
    if reasoning:
        endings = text.count(THINK_END)
        if endings != 1:
            raise FormatError(f"Expected exactly one thinking end token, got {endings}")
        text = after_reasoning(text)
    calls = [ToolCall(name, call_body) for name, call_body in TOOL_CALL.findall(text)]
    if len(calls) > 1:
        raise FormatError(
            f"Expected one tool call, but found {len(calls)}: {', '.join(c.name for c in calls)}. "
            "Ensure only one <tool:...></tool> block is present in the response."
        )
    opening, closing = text.count("<tool:"), text.count("</tool>")
    if len(calls) != opening or len(calls) != closing:
        raise FormatError(
            f"Mismatch in tool tag counts: found {len(calls)} tool calls via regex, but counted {opening} "
            f"opening tags and {closing} closing tags."
        )
    if not calls:
        raise FormatError("No tool calls found")
    if not calls[0].body.strip():
        raise FormatError(
            f"Tool '{calls[0].name}' requires non-empty arguments, but received empty or whitespace-only input."
        )
    return calls[0]
