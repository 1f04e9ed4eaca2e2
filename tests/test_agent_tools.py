"""CWM's agent tools inside a sandbox behave as the release's SWE environment does (cwm/rl/swerl: a persistent
bash session, the edit/create plugins, submit), with its messages word for word; and turns are parsed by its
rules."""

import pytest
from sandbox_fixtures import BACKENDS, sandbox_of

from cwm_data.chat_format import FormatError, ToolCall, format_tool_call, parse_tool_call, turn
from cwm_tasks.agent_tools import (
    SUBMISSION,
    TRUNCATION_MARK,
    AgentTools,
    NoSuchToolError,
    fit_message,
    tool_message,
)
from cwm_tasks.trajectory_replay import llama3_tokenizer

TURN_ERRORS = [
    ("no thinking end\n<tool: bash>\nls\n</tool>", "Expected exactly one thinking end token, got 0"),
    ("a</think>b</think>\n<tool: bash>\nls\n</tool>", "Expected exactly one thinking end token, got 2"),
    (
        "r\n</think>\n<tool: bash>\na\n</tool>\n<tool: edit>\nb\n</tool>",
        "Expected one tool call, but found 2: bash, edit. Ensure only one <tool:...></tool> block is present in "
        "the response.",
    ),
    (
        "r\n</think>\n<tool: bash>\necho '</tool>'\n</tool>",
        "Mismatch in tool tag counts: found 1 tool calls via regex, but counted 1 opening tags and 2 closing tags.",
    ),
    (
        "r\n</think>\n<tool:bash>\nls\n</tool>",
        "Mismatch in tool tag counts: found 0 tool calls via regex, but counted 1 opening tags and 1 closing tags.",
    ),
    ("r\n</think>\nAll done.", "No tool calls found"),
    ("<tool: bash>\nls\n</tool>\n</think>\nI ran it.", "No tool calls found"),  # a call in the reasoning is none
    (
        "r\n</think>\n<tool: bash>\n  \n</tool>",
        "Tool 'bash' requires non-empty arguments, but received empty or whitespace-only input.",
    ),
]


def test_turns_are_parsed_by_the_release_rules():
    assert parse_tool_call("look\n</think>\nFirst: <tool: bash>\nls -l\necho\n</tool> then", True) == ToolCall(
        "bash", "ls -l\necho"
    )
    assert parse_tool_call(format_tool_call("edit", "  a\n\n"), False) == ToolCall("edit", "  a\n\n")
    for text, message in TURN_ERRORS:
        with pytest.raises(FormatError) as error:
            parse_tool_call(text, reasoning=True)
        assert str(error.value) == message, text


EDIT_FILE = "def f():\n    return 1\n\n\ndef g():\n    return 1\n"
EDIT_FORMAT_ERROR = (
    "Failed to parse the edit tool call. Make sure it has the following format:\n\n<tool: edit>\n[path]\n"
    "<<<<<<< SEARCH\n[search_lines]\n=======\n[replacement_lines]\n>>>>>>> REPLACE\n</tool>\n"
)


def edit(path: str, search: str, replace: str) -> str:
    return f"{path}\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE"


@pytest.mark.parametrize("backend", BACKENDS)
def test_tools_behave_like_the_release(backend):
    sandbox = sandbox_of(backend, timeout_s=20)
    sandbox.put_file("repo/m.py", EDIT_FILE)
    tools = AgentTools(sandbox, "/work/repo", timeout_s=5)
    try:

        def run(name: str, body: str) -> str:
            return tools.run(ToolCall(name, body)).feedback

        # bash: one persistent session, stdout and stderr interleaved, no exit-code note.
        assert run("bash", "pwd") == "/work/repo\n"
        assert run("bash", "mkdir sub && cd sub && export GREETING=hi") == ""
        assert run("bash", "pwd; echo $GREETING; echo oops >&2; echo done; false") == "/work/repo/sub\nhi\noops\ndone\n"
        assert run("bash", "sleep 30") == (
            "The current session has terminated due to timeout. A fresh session has started with the current "
            "working directory reset to default."
        )
        assert run("bash", "pwd; echo ${GREETING:-unset}") == "/work/repo\nunset\n"
        assert run("bash", "exit 3").startswith("The current session has terminated unexpectedly.")
        assert run("bash", "yes | head -c 600000").startswith(
            "The current session has terminated because your previous command produced too much output."
        )
        # edit: one block, the search starts a line and is unique; line numbers and a snippet on success.
        assert run("edit", "m.py\nreplace everything") == EDIT_FORMAT_ERROR
        assert run("edit", edit("m.py", "a", "b") + "\n" + edit("m.py", "c", "d")) == (
            "Only one search/replace block is allowed. Got: 2.\n"
        )
        assert (
            run("edit", edit("nope.py", "a", "b")) == "The path nope.py does not exist. Please provide a valid path.\n"
        )
        assert run("edit", edit("m.py", "return 1", "return 2")) == (
            "No replacement was performed, the search lines did not appear verbatim in m.py. The search lines must "
            "exactly match one or more consecutive lines from the file, with indentations preserved.\n"
        )
        assert run("edit", edit("m.py", "    return 1", "    return 2")) == (
            "No replacement was performed. Multiple occurrences of the search text in lines [2, 6] of m.py. Please "
            "ensure it is unique.\n"
        )
        assert run("edit", edit("m.py", "def g():\n    return 1", "def g():\n    return 3")) == (
            "File m.py has been successfully updated at line 5 and now contains 7 lines. The surrounding lines "
            "after the edit are shown below:\n     1\tdef f():\n     2\t    return 1\n     3\t\n     4\t\n"
            "     5\tdef g():\n     6\t    return 3\n     7\t\nReview the changes and make sure they are as "
            "expected.\n"
        )
        assert sandbox.get_file("repo/m.py").decode() == "def f():\n    return 1\n\n\ndef g():\n    return 3\n"
        # An empty replacement (a blank line before the REPLACE marker) leaves an empty line, as the release's does.
        assert run("edit", "m.py\n<<<<<<< SEARCH\ndef f():\n=======\n\n>>>>>>> REPLACE").startswith(
            "File m.py has been successfully updated at line 1"
        )
        assert sandbox.get_file("repo/m.py").decode().startswith("\n    return 1\n")
        # create: path, then the content as given (no newline added); relative to the session's directory.
        assert run("create", "new.py\nx = 1") == "File created successfully at: new.py (1 lines).\n"
        assert sandbox.get_file("repo/new.py") == b"x = 1"
        assert run("create", "new.py\ny") == "new.py already exists. Cannot create a new file at an existing path.\n"
        assert run("create", "gone/x.py\ny") == (
            "File creation failed. The parent directory /work/repo/gone does not exist.\n"
        )
        # submit: a file starting with "diff", as it is at submission time.
        assert run("submit", "missing.diff") == "Failed to submit missing.diff. Make sure it exists and is readable."
        sandbox.put_file("repo/empty.diff", "\n")
        assert run("submit", "empty.diff") == "Failed to submit empty.diff. It is an empty file."
        sandbox.put_file("repo/spaced.diff", " diff --git a/m.py b/m.py\n")
        assert run("submit", "spaced.diff") == "Failed to submit spaced.diff. It is not a valid diff file."
        sandbox.put_file("repo/fix.diff", "diff --git a/m.py b/m.py\n")
        accepted = tools.run(ToolCall("submit", " fix.diff \n"))
        assert accepted.submission == "diff --git a/m.py b/m.py\n"
        assert accepted.feedback == SUBMISSION.format(patch="diff --git a/m.py b/m.py\n")
        with pytest.raises(NoSuchToolError, match=r"^Tool 'rm' not found\.$"):
            tools.run(ToolCall("rm", "-rf /"))
    finally:
        tools.close()
        sandbox.close()


def test_long_messages_are_cut_to_their_token_limit_with_the_release_marker():
    tokenizer = llama3_tokenizer()
    text = tool_message("word " * 5000, 10, 1000)
    cut = fit_message(tokenizer, "tool: bash", text, 200)
    assert cut.endswith(TRUNCATION_MARK) and text.startswith(cut[: -len(TRUNCATION_MARK)])
    assert 190 <= len(tokenizer.encode_pieces(turn("tool: bash", cut))) <= 200
    assert fit_message(tokenizer, "tool: bash", "short", 200) == "short"
