"""CWM's agent tools as the release's SWE environment runs them (cwm/rl/envs/envs/swerl_tool.py,
cwm/rl/swerl/tools.py and plugins/): bash in one persistent session per episode, edit and create as scripts run
in that session (so relative paths follow its `cd`), submit as `cat` of a patch file; every answer is the
release's text.

A tool's result goes back to the model as `<output>\\n{feedback}\\n</output>` and the budget notice
(remaining turns and tokens); a successful submit's feedback shows the patch and asks for a review.
"""

import dataclasses

from cwm_data.chat_format import AGENT_TOOLS, ToolCall, turn
from cwm_data.tokenizer import CwmTokenizer
from cwm_envs.sandbox import WORKDIR, Sandbox
from cwm_envs.shell_session import ENDED, TIMEOUT, TOO_LONG, ShellSession

TOOLS_DIR = ".cwm-agent"  # under /work, beside (not inside) the repository the agent works on
FRESH_SESSION = " A fresh session has started with the current working directory reset to default."
SESSION_ERRORS = {
    ENDED: "The current session has terminated unexpectedly." + FRESH_SESSION,
    TIMEOUT: "The current session has terminated due to timeout." + FRESH_SESSION,
    TOO_LONG: "The current session has terminated because your previous command produced too much output."
    + FRESH_SESSION,
}
OUTPUT = "<output>\n{feedback}\n</output>"
BUDGET = "<budget>\n* Remaining turns: {remaining_turns}\n* Remaining tokens: {remaining_tokens}\n</budget>"
SUBMISSION = (
    "The following patch content is marked as your final submission:\n\n<submission>\n{patch}\n</submission>\n\n"
    "Review the patch content and ensure it correctly resolves the issue. If necessary, you can continue "
    "refining the patch and submit an updated version."
)
HEREDOC = "EOF_938176592"
TRUNCATION_MARK = "[...]"  # ends a message cut to its token limit

# edit: "PATH" then one SEARCH/REPLACE block; the search must start at a line start and occur exactly once.
_EDIT = r"""
import os, re, sys
command = sys.stdin.read()
blocks = re.findall(r"(.*)\n<<<<<<< SEARCH\n([\s\S]*?)\n=======\n([\s\S]*?)\n>>>>>>> REPLACE", command)
if not blocks:
    print("Failed to parse the edit tool call. Make sure it has the following format:\n\n<tool: edit>\n[path]\n"
          "<<<<<<< SEARCH\n[search_lines]\n=======\n[replacement_lines]\n>>>>>>> REPLACE\n</tool>")
    sys.exit(1)
if len(blocks) > 1:
    print(f"Only one search/replace block is allowed. Got: {len(blocks)}.")
    sys.exit(1)
path, search, replace = blocks[0]
if not os.path.exists(path):
    print(f"The path {path} does not exist. Please provide a valid path.")
    sys.exit(1)
text, target = "\n" + open(path).read(), "\n" + search
starts, at = [], text.find(target)
while at >= 0:
    starts.append(at)
    at = text.find(target, at + 1)
if not starts:
    message = f"No replacement was performed, the search lines did not appear verbatim in {path}."
    if search.split("\n")[0].lstrip() in text:
        message += (" The search lines must exactly match one or more consecutive lines from the file, with "
                    "indentations preserved.")
    print(message)
    sys.exit(1)
if len(starts) > 1:
    lines = [text[:s].count("\n") + 1 for s in starts]
    print(f"No replacement was performed. Multiple occurrences of the search text in lines {lines} of {path}. "
          "Please ensure it is unique.")
    sys.exit(1)
new = text.replace(target, "\n" + replace)[1:]
open(path, "w").write(new)
line = text[:starts[0]].count("\n") + 1
shown = new.split("\n")
first, last = max(1, line - 8), line + 8 + replace.count("\n")
snippet = "\n".join(f"{i:6}\t{shown[i - 1]}" for i in range(first, min(last, len(shown)) + 1))
print(f"File {path} has been successfully updated at line {line} and now contains {new.count(chr(10)) + 1} lines. "
      f"The surrounding lines after the edit are shown below:\n{snippet}\n"
      "Review the changes and make sure they are as expected.")
"""

# create: "PATH" newline CONTENT, written as given (no newline added); the file must not exist, its parent must.
_CREATE = r"""
import os, sys
command = sys.stdin.read()[:-1]
path, _, content = command.partition("\n")
if os.path.exists(path):
    print(f"{path} already exists. Cannot create a new file at an existing path.")
    sys.exit(1)
if not path:
    print("Path is empty. Please provide a valid path.")
    sys.exit(1)
parent = os.path.dirname(os.path.abspath(path))
if not os.path.isdir(parent):
    print(f"File creation failed. The parent directory {parent} does not exist.")
    sys.exit(1)
open(path, "w").write(content)
print(f"File created successfully at: {path} ({content.count(chr(10)) + 1} lines).")
"""

PLUGINS = {"edit": _EDIT, "create": _CREATE}


class NoSuchToolError(LookupError):
    """A call naming a tool the environment does not have."""


@dataclasses.dataclass
class ToolResult:
    feedback: str  # what the tool answered (wrapped in <output> for the model by tool_message)
    submission: str | None = None  # the patch, when submit accepted one


def tool_message(feedback: str, remaining_turns: int | str, remaining_tokens: int | str) -> str:
    """The body of a tool's turn: its output, then the budget notice."""
    return (
        OUTPUT.format(feedback=feedback)
        + "\n\n"
        + BUDGET.format(remaining_turns=remaining_turns, remaining_tokens=remaining_tokens)
    )


def fit_message(tokenizer: CwmTokenizer, role: str, text: str, limit: int) -> str:
    """The message cut to `limit` tokens as a whole turn, "[...]" marking the cut (the release's right cut)."""
    whole = len(tokenizer.encode_pieces(turn(role, text)))
    if whole <= limit:
        return text
    body = tokenizer.encode(text)
    cut = tokenizer.encode(TRUNCATION_MARK)
    return tokenizer.decode(body[: max(0, limit - (whole - len(body)) - len(cut))] + cut)


def tool_result_message(
    tokenizer: CwmTokenizer,
    role: str,
    feedback: str,
    remaining_turns: int,
    context_tokens: int,
    context_size: int,
    limit: int,
) -> str:
    """A tool's turn as the model sees it after `context_tokens` tokens of the episode: the output, the budget
    notice (the tokens left once this turn is added, estimated as the release does: with the notice's
    placeholders, at most `limit`), cut to `limit` tokens."""
    unfilled = OUTPUT.format(feedback=feedback) + "\n\n" + BUDGET
    estimate = min(len(tokenizer.encode_pieces(turn(role, unfilled))), limit)
    text = tool_message(feedback, remaining_turns, context_size - context_tokens - estimate)
    return fit_message(tokenizer, role, text, limit)


class AgentTools:
    """The tools of one agent episode in one sandbox; `close` ends the session."""

    def __init__(self, sandbox: Sandbox, repo_root: str, timeout_s: float = 120.0):
        self.sandbox = sandbox
        self.session = ShellSession(sandbox.open_shell, f"cd {repo_root}", timeout_s)
        self._plugins_ready = False

    def run(self, call: ToolCall) -> ToolResult:
        if call.name not in AGENT_TOOLS:
            raise NoSuchToolError(f"Tool '{call.name}' not found.")
        if call.name == "bash":
            out = self.session.run(call.body)
            return ToolResult(SESSION_ERRORS[out.error] if out.error else out.text)
        if call.name == "submit":
            return self._submit(call.body.strip())
        if not self._plugins_ready:
            for name, script in PLUGINS.items():
                self.sandbox.put_file(f"{TOOLS_DIR}/{name}.py", script)
            self._plugins_ready = True
        script = f"{WORKDIR}/{TOOLS_DIR}/{call.name}.py"
        return ToolResult(self.session.run(f"python3 {script} <<'{HEREDOC}'\n{call.body}\n{HEREDOC}").text)

    def _submit(self, path: str) -> ToolResult:
        out = self.session.run(f"cat {path}")
        if out.error or self.session.exit_code() != 0:
            return ToolResult(f"Failed to submit {path}. Make sure it exists and is readable.")
        if not out.text.strip():
            return ToolResult(f"Failed to submit {path}. It is an empty file.")
        if not out.text.startswith("diff"):
            return ToolResult(f"Failed to submit {path}. It is not a valid diff file.")
        return ToolResult(SUBMISSION.format(patch=out.text), submission=out.text)

    def close(self):
        self.session.close()
