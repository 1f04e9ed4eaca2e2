"""What the model sees matches the released CWM's code (facebookresearch/cwm): goldens written from the release's
templates (tests/data/release_swe_prompts.json holds the SWE ones, rendered from its source), the math answer
table its own extraction and Math-Verify produced (tests/data/release_math_answers.json), and the shipped agent
episodes played again in a sandbox."""

import json
import pathlib

import pytest
from sandbox_fixtures import BACKENDS, sandbox_of

from cwm_data import special_tokens as st
from cwm_data.chat_format import (
    REASONING_SYSTEM_PROMPT,
    STOP_TOKENS,
    generation_prompt,
    observation,
    system_prompt,
    tool_role,
)
from cwm_data.trace_format import to_text
from cwm_tasks.agent_tools import SUBMISSION, tool_message
from cwm_tasks.math_problems import grade_math, math_prompt, release_answer
from cwm_tasks.swe import SWE_ENVIRONMENT, SWE_USER
from cwm_tasks.trajectory_replay import EPISODES, llama3_tokenizer, load_scripts, replay

DATA = pathlib.Path(__file__).parent / "data"
SWE = json.loads((DATA / "release_swe_prompts.json").read_text())
MATH_ANSWERS = json.loads((DATA / "release_math_answers.json").read_text())


def test_the_reasoning_system_prompt_and_a_math_prompt():
    assert REASONING_SYSTEM_PROMPT == (
        "You are a helpful AI assistant. You always reason before responding, using the following format:\n\n"
        "<think>\nyour internal reasoning\n</think>\nyour external response"
    )
    # The user body (problem, then the instruction) is stripped as a whole, as the release's renderer does.
    assert to_text(math_prompt("  What is 1 + 1?")) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" + REASONING_SYSTEM_PROMPT + "<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is 1 + 1?\n\nWrap your answer in $\\boxed{}$.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n<think>\n"
    )


def test_generation_stops_on_all_three_end_tokens_and_user_turns_are_stripped():
    assert set(STOP_TOKENS) == {st.EOM, st.EOT, st.END_OF_TEXT}
    assert to_text(generation_prompt([("user", "\n  hi there  \n")], reasoning=False)) == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi there<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_the_swe_system_and_user_prompts():
    environment = SWE_ENVIRONMENT.format(session_timeout="120-second", context_size=131072, max_turns=128)
    assert system_prompt(environment) == SWE["swe_system"]
    assert SWE_USER.format(issue="Calling foo() raises KeyError.", repo_root="/testbed") == SWE["swe_user_testbed"]


def test_a_tool_result_with_its_budget_and_the_turn_after_it():
    text = to_text(observation(tool_role("bash"), tool_message("foo.py\n", 127, "K1"), reasoning=True))
    assert text == SWE["observation_after_bash"]


def test_a_format_error_reply_and_a_submit_reply():
    error = to_text(observation("user", "FormatError: No tool calls found", reasoning=True))
    assert error == SWE["observation_after_format_error"]
    patch = (
        "diff --git a/src/foo.py b/src/foo.py\n--- a/src/foo.py\n+++ b/src/foo.py\n@@ -1 +1 @@\n"
        "-x = d['k']\n+x = d.get('k')\n"
    )
    reply = tool_message(SUBMISSION.format(patch=patch), 125, "K3")
    assert to_text(observation(tool_role("submit"), reply, reasoning=True)) == SWE["observation_after_submit"]


def test_math_answers_are_read_and_judged_as_the_release_does():
    assert len(MATH_ANSWERS) == 43 and sum(row["extracted"] is None for row in MATH_ANSWERS) == 16
    for row in MATH_ANSWERS:
        assert release_answer(row["response"]) == row["extracted"], row
    for row in MATH_ANSWERS:
        if row["extracted"] is not None:
            assert grade_math(row["response"], row["reference"]).passed == row["math_verify"], row


@pytest.mark.parametrize("backend", BACKENDS[:1])
def test_the_shipped_agent_episodes_are_what_the_environment_answers(backend):
    shipped = {e["id"]: e for e in map(json.loads, pathlib.Path(EPISODES).read_text().splitlines())}
    tokenizer = llama3_tokenizer()
    for script in load_scripts():
        sandbox = sandbox_of(backend, timeout_s=60, memory_mb=1024)
        try:
            assert replay(script, sandbox, tokenizer) == shipped[script["id"]], script["id"]
        finally:
            sandbox.close()
