"""CWM's agent tools, run inside a sandbox: bash, edit (SEARCH/REPLACE), create, submit (CWM.md section 4.2).

A turn's text is parsed for exactly one `<tool: NAME>` call; a malformed call, an unknown tool or a tool
used wrongly becomes an observation that says what was wrong (the episode goes on). Observations are cut
at `max_observation_chars` with a "[...]" marker, as CWM cuts tool feedback.
"""

import dataclasses

from cwm_data.chat_format import AGENT_TOOLS, ToolCall, parse_single_call
from cwm_envs.sandbox import Sandbox

TRUNCATION_MARK = "\n[...]"

# edit: the body is "PATH\n<<<<<<< SEARCH\n...\n=======\n...\n>>>>>>> REPLACE"; the search text must
# occur exactly once. Runs inside the sandbox with the body on stdin.
_EDIT = r"""
import os, sys
body = sys.stdin.read()
path, _, block = body.partition("\n")
start, mid, end = "<<<<<<< SEARCH\n", "\n=======\n", "\n>>>>>>> REPLACE"
if not block.startswith(start) or mid not in block or not block.rstrip("\n").endswith(end.strip("\n")):
    sys.exit("error: the edit body must be a path line, then <<<<<<< SEARCH, the old lines, =======, "
             "the new lines, >>>>>>> REPLACE")
search, _, rest = block[len(start):].partition(mid)
replace = rest[:rest.rfind(end.strip("\n"))].rstrip("\n") if rest.strip() != end.strip() else ""
path = path.strip()
if not os.path.isfile(path):
    sys.exit(f"error: {path} does not exist")
text = open(path).read()
count = text.count(search)
if count != 1:
    sys.exit(f"error: the SEARCH text occurs {count} times in {path}; it must occur exactly once")
open(path, "w").write(text.replace(search, replace, 1))
print(f"edited {path}")
"""

# create: the body is "PATH\nCONTENT"; the file must not exist and its directory must.
_CREATE = r"""
import os, sys
body = sys.stdin.read()
path, _, content = body.partition("\n")
path = path.strip()
if os.path.exists(path):
    sys.exit(f"error: {path} already exists (use edit to change it)")
if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
    sys.exit(f"error: the directory of {path} does not exist")
open(path, "w").write(content if content.endswith("\n") else content + "\n")
print(f"created {path}")
"""


@dataclasses.dataclass
class ToolOutcome:
    observation: str
    tool: str | None  # None when no valid call was made
    error: bool = False
    submission: str | None = None  # the patch, when `submit` accepted one


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + TRUNCATION_MARK


def run_turn(
    sandbox: Sandbox, assistant_text: str, timeout: float = 120.0, max_observation_chars: int = 65536
) -> ToolOutcome | None:
    """The observation for one assistant turn; None when the turn makes no tool call (a final answer)."""
    call, problem = parse_single_call(assistant_text)
    if problem:
        return ToolOutcome(
            f"Format error: {problem}. Call one tool as <tool: NAME>, a newline, the input, a newline, </tool>.",
            None,
            error=True,
        )
    if call is None:
        return None
    return run_tool(sandbox, call, timeout, max_observation_chars)


def run_tool(
    sandbox: Sandbox, call: ToolCall, timeout: float = 120.0, max_observation_chars: int = 65536
) -> ToolOutcome:
    if call.name not in AGENT_TOOLS:
        return ToolOutcome(f"Unknown tool '{call.name}'. Tools: {', '.join(AGENT_TOOLS)}.", call.name, error=True)
    if call.name == "bash":
        result = sandbox.exec(call.body, timeout=timeout)
        text = result.text()
        if result.timed_out:
            text += f"\n[timed out after {timeout:g}s]"
        elif result.truncated:
            text += "\n[output cut]"
        elif result.exit_code:
            text += f"\n[exit code {result.exit_code}]"
        return ToolOutcome(
            f"<output>\n{truncate(text, max_observation_chars)}\n</output>", "bash", error=result.exit_code != 0
        )
    if call.name in ("edit", "create"):
        result = sandbox.exec(
            ["python3", "-c", _EDIT if call.name == "edit" else _CREATE], stdin=call.body, timeout=timeout
        )
        return ToolOutcome(
            f"<output>\n{truncate(result.text().strip(), max_observation_chars)}\n</output>",
            call.name,
            error=not result.ok,
        )
    path = call.body.strip()
    result = sandbox.exec(["cat", "--", path], timeout=timeout)
    patch = result.stdout.decode(errors="replace")
    if not result.ok:
        return ToolOutcome(f"<output>\nsubmit: cannot read {path}\n</output>", "submit", error=True)
    if not patch.strip() or not patch.lstrip().startswith("diff"):
        return ToolOutcome(
            f"<output>\nsubmit: {path} must be a non-empty patch starting with 'diff'\n</output>", "submit", error=True
        )
    return ToolOutcome(
        f"<submission>\n{truncate(patch, max_observation_chars)}\n</submission>\nReview your "
        f"submission; you may submit again, or give your final answer.",
        "submit",
        submission=patch,
    )
