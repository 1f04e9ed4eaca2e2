"""Agent trajectories: a JSONL schema for multi-turn episodes, rendered to CWM's chat tokens and a loss mask.

One JSON object per line:

    {"id": "swe-0001",                                  # any string, used in error messages
     "messages": [
        {"role": "system", "content": "..."},           # optional, first
        {"role": "user", "content": "<issue_description>...</issue_description>"},
        {"role": "assistant", "content": "...reasoning...</think>\n<tool: bash>\nls\n</tool>"},
        {"role": "tool", "name": "bash", "content": "<output>...</output>"},
        ...
        {"role": "assistant", "content": "## Summary ..."}]}

Rules: roles are system (first only), user, assistant, tool; an assistant turn is a final answer (no tool tag
after its reasoning) or calls exactly one tool as CWM's agent environment requires (cwm_data.chat_format:
reasoning, `</think>`, one `<tool: NAME>\\n...\\n</tool>` naming bash, edit, create or submit); a tool message
answers the call just before it and carries its `name`.

Rendering (cwm_data.chat_format): `<|begin_of_text|>`, then a turn per message, whose role is the role or
"tool: NAME"; bodies are stripped of surrounding whitespace except tool results. Loss mask: assistant bodies
and their `<|eot_id|>` are trained; headers and the system prompt never; user and tool messages
(observations) are trained with probability `keep_observation_prob` each (ForagerAgent data used 0.5), else
masked.
"""

import json
import random
from typing import Any

from cwm_common.errors import CwmError
from cwm_data import special_tokens as st
from cwm_data.chat_format import (
    AGENT_TOOLS,
    THINK_END,
    FormatError,
    ToolCall,
    after_reasoning,
    body,
    header,
    parse_tool_call,
    tool_role,
)
from cwm_data.special_tokens import special
from cwm_data.tokenizer import CwmTokenizer

ROLES = ("system", "user", "assistant", "tool")
OBSERVATION_ROLES = ("user", "tool")


def validate_episode(episode: Any) -> dict:
    """The episode if it follows the schema; else a CwmError naming the record and the field."""
    if not isinstance(episode, dict):
        raise CwmError(f"agent record: expected a JSON object, got {type(episode).__name__}")
    name = f"agent record {episode.get('id', '?')!r}"
    messages = episode.get("messages")
    if not isinstance(messages, list) or not messages:
        raise CwmError(f"{name}: 'messages' must be a non-empty list")
    pending_call = None
    for i, message in enumerate(messages):
        where = f"{name}: messages[{i}]"
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise CwmError(f"{where}: needs a string 'content'")
        role = message.get("role")
        if role not in ROLES:
            raise CwmError(f"{where}.role is {role!r}; allowed: {', '.join(ROLES)}")
        if role == "system" and i != 0:
            raise CwmError(f"{where}: a system message may only come first")
        if role == "assistant":
            pending_call = _tool_call(message["content"], where)
        elif role == "tool":
            if pending_call is None:
                raise CwmError(f"{where}: a tool message must answer the assistant's tool call just before it")
            if message.get("name") != pending_call.name:
                raise CwmError(f"{where}.name is {message.get('name')!r} but the call was {pending_call.name!r}")
            pending_call = None
        else:
            pending_call = None
    return episode


def _tool_call(content: str, where: str) -> ToolCall | None:
    """The turn's tool call; None for a final answer (no tool tag after the reasoning)."""
    answer = after_reasoning(content)
    if "<tool:" not in answer and "</tool>" not in answer:
        return None
    try:
        call = parse_tool_call(content, reasoning=THINK_END in content)
    except FormatError as e:
        raise CwmError(f"{where}.content: {e}") from None
    if call.name not in AGENT_TOOLS:
        raise CwmError(f"{where}.content calls unknown tool {call.name!r}; tools: {', '.join(AGENT_TOOLS)}")
    return call


def parse_episode_line(line: str | bytes) -> dict:
    try:
        return validate_episode(json.loads(line))
    except json.JSONDecodeError as e:
        raise CwmError(f"agent record: not valid JSON ({e.msg} at char {e.pos})") from None


def _role_text(message: dict) -> str:
    return tool_role(message["name"]) if message["role"] == "tool" else message["role"]


def render_episode(
    episode: dict, tokenizer: CwmTokenizer, keep_observation_prob: float = 0.0, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Token ids and a per-token loss mask (1 = trained as a target); deterministic for a given seed."""
    rng = random.Random(f"{seed}:{episode.get('id', '')}")
    ids = tokenizer.encode_pieces([special(st.BEGIN_OF_TEXT)])
    mask = [0]
    for message in episode["messages"]:
        head = tokenizer.encode_pieces(header(_role_text(message)))
        tail = tokenizer.encode_pieces(body(_role_text(message), message["content"]))
        if message["role"] == "assistant":
            trained = 1
        elif message["role"] in OBSERVATION_ROLES:
            trained = int(rng.random() < keep_observation_prob)
        else:
            trained = 0
        ids += head + tail
        mask += [0] * len(head) + [trained] * len(tail)
    return ids, mask
