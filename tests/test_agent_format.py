import json

import pytest

from cwm_common.errors import CwmError
from cwm_data.agent_format import parse_episode_line, render_episode, validate_episode
from cwm_data.tokenizer import train_sentencepiece

EPISODE = {
    "id": "ep-1",
    "messages": [
        {"role": "system", "content": "You are a helpful AI assistant.\n"},
        {"role": "user", "content": "  Fix the bug in add().  "},
        {"role": "assistant", "content": "Look first.\n</think>\n<tool: bash>\ncat add.py\n</tool>"},
        {"role": "tool", "name": "bash", "content": "<output>\ndef add(a, b): return a - b\n</output>\n"},
        {"role": "assistant", "content": "Done."},
    ],
}
EXPECTED_TEXT = (
    "<|begin_of_text|>"
    "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful AI assistant.<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nFix the bug in add().<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\nLook first.\n</think>\n"
    "<tool: bash>\ncat add.py\n</tool><|eot_id|>"
    "<|start_header_id|>tool: bash<|end_header_id|>\n\n<output>\ndef add(a, b): return a - b\n</output>\n<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\nDone.<|eot_id|>"
)


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    corpus = [EXPECTED_TEXT, "def add(a, b):\n    return a + b\n"] * 20
    return train_sentencepiece(corpus, 300, str(tmp_path_factory.mktemp("sp") / "t.model"))


def _trained_text(tok, ids, mask, value=1):
    return tok.decode([i for i, m in zip(ids, mask, strict=True) if m == value])


def test_chat_rendering_and_mask(tok):
    ids, mask = render_episode(EPISODE, tok)
    assert tok.decode(ids) == EXPECTED_TEXT and len(mask) == len(ids)
    assert _trained_text(tok, ids, mask) == (
        "Look first.\n</think>\n<tool: bash>\ncat add.py\n</tool><|eot_id|>Done.<|eot_id|>"
    )
    ids, mask = render_episode(EPISODE, tok, keep_observation_prob=1.0)
    trained = _trained_text(tok, ids, mask)
    assert "Fix the bug" in trained and "<output>" in trained and "helpful" not in trained
    assert "<|start_header_id|>" not in trained


def test_observation_keeping_is_random_but_reproducible(tok):
    many = [{**EPISODE, "id": f"ep-{k}"} for k in range(400)]
    none_kept, all_kept = (sum(render_episode(EPISODE, tok, p)[1]) for p in (0.0, 1.0))
    trained = [sum(render_episode(e, tok, keep_observation_prob=0.5, seed=7)[1]) for e in many]
    # Two observations, each kept with probability 1/2: neither in ~1/4 of the episodes, both in ~1/4.
    assert 0.17 < trained.count(none_kept) / 400 < 0.33 and 0.17 < trained.count(all_kept) / 400 < 0.33
    assert [render_episode(e, tok, 0.5, seed=7) for e in many[:20]] == [
        render_episode(e, tok, 0.5, seed=7) for e in many[:20]
    ]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m.__setitem__(1, {"role": "robot", "content": "x"}), r"messages\[1\]\.role is 'robot'"),
        (
            lambda m: m.__setitem__(
                2, {"role": "assistant", "content": "<tool: bash>\nls\n</tool><tool: bash>\nls\n</tool>"}
            ),
            "Expected one tool call, but found 2: bash, bash",
        ),
        (
            lambda m: m.__setitem__(2, {"role": "assistant", "content": "<tool: rm_rf>\n/\n</tool>"}),
            "unknown tool 'rm_rf'",
        ),
        (lambda m: m.__setitem__(2, {"role": "assistant", "content": "no call"}), r"messages\[3\]: a tool message"),
        (lambda m: m[3].__setitem__("name", "edit"), r"messages\[3\]\.name is 'edit'"),
        (lambda m: m.insert(2, {"role": "system", "content": "late"}), "only come first"),
        (lambda m: m[0].pop("content"), "string 'content'"),
    ],
)
def test_malformed_episodes_name_the_record_and_field(edit, message):
    episode = json.loads(json.dumps(EPISODE))
    edit(episode["messages"])
    with pytest.raises(CwmError, match=rf"agent record 'ep-1': .*{message}"):
        validate_episode(episode)


def test_bad_json_line():
    with pytest.raises(CwmError, match="not valid JSON"):
        parse_episode_line('{"id": 1,')
    assert parse_episode_line(json.dumps(EPISODE))["id"] == "ep-1"
