"""CWM's agent tools inside a sandbox, and their rules on malformed input."""

import pytest
from sandbox_fixtures import BACKENDS, sandbox_of

from cwm_data.chat_format import format_tool_call, parse_single_call, parse_tool_calls
from cwm_tasks.agent_tools import TRUNCATION_MARK, run_turn


def test_parser_accepts_exactly_the_cwm_shape():
    assert [(c.name, c.body) for c in parse_tool_calls("x <tool: bash>\nls -l\necho\n</tool> y")] == [
        ("bash", "ls -l\necho")
    ]
    assert parse_single_call(format_tool_call("edit", "a\nb")) == (
        parse_tool_calls("<tool: edit>\na\nb\n</tool>")[0],
        None,
    )
    for bad in (
        "<tool: bash>ls</tool>",
        "<tool:bash>\nls\n</tool>",
        "<tool: ba sh>\nls\n</tool>",
        "<tool: bash>\nls\n",
    ):
        call, problem = parse_single_call(bad)
        assert call is None and problem, bad
    _, problem = parse_single_call("<tool: bash>\na\n</tool>\n<tool: bash>\nb\n</tool>")
    assert problem is not None and "2 tool calls" in problem
    assert parse_single_call("just an answer") == (None, None)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tools_follow_cwm_rules(backend):
    sandbox = sandbox_of(backend)
    try:

        def turn(name, body):
            return run_turn(sandbox, format_tool_call(name, body), timeout=10, max_observation_chars=200)

        assert not turn("create", "m.py\ndef f():\n    return 1\n\n\ndef g():\n    return 1").error
        assert "already exists" in turn("create", "m.py\nx").observation
        assert "does not exist" in turn("create", "nodir/m.py\nx").observation
        twice = turn("edit", "m.py\n<<<<<<< SEARCH\n    return 1\n=======\n    return 2\n>>>>>>> REPLACE")
        assert twice.error and "occurs 2 times" in twice.observation
        once = turn(
            "edit", "m.py\n<<<<<<< SEARCH\ndef f():\n    return 1\n=======\ndef f():\n    return 3\n>>>>>>> REPLACE"
        )
        assert not once.error and sandbox.get_file("m.py").startswith(b"def f():\n    return 3\n")
        assert "must be a path line" in turn("edit", "m.py\nreplace everything").observation
        assert turn("bash", "python3 -c 'import m; print(m.f())'").observation == "<output>\n3\n\n</output>"
        long = turn("bash", "seq 1000")
        assert long.observation.endswith(TRUNCATION_MARK + "\n</output>") and len(long.observation) < 260
        assert "non-empty patch" in turn("submit", "m.py").observation
        sandbox.put_file("fix.diff", "diff --git a/m.py b/m.py\n")
        accepted = turn("submit", "fix.diff")
        assert accepted.submission == "diff --git a/m.py b/m.py\n" and "<submission>" in accepted.observation
        assert "Unknown tool 'rm'" in turn("rm", "-rf /").observation
        malformed = run_turn(sandbox, "<tool: bash>ls</tool>")
        assert malformed is not None and malformed.error and "Format error" in malformed.observation
        assert run_turn(sandbox, "All done.") is None
    finally:
        sandbox.close()
