import base64
import itertools
import json
import pathlib

import pytest

from cwm_common.errors import CwmError
from cwm_data import special_tokens as st
from cwm_data import trace_format
from cwm_data.special_tokens import SpecialToken, special
from cwm_data.tokenizer import CwmTokenizer, train_sentencepiece
from cwm_data.tracer import trace

ROOT = pathlib.Path(__file__).resolve().parents[1]
CODE = [
    json.loads(line)["code"] for line in (ROOT / "data/benchmarks/cruxeval/cruxeval.jsonl").read_text().splitlines()
]
TEXTS = [
    "def f(x):\n    return x + 1\n",
    "\tTabs  and   spaces\n\n\n",
    "héllo ✓ 🐍 ünïcode",
    "",
    " ",
    "<|frame_sep|> <|end_of_text|><s></s><unk>",
    "x = '<|eot_id|>'",
]


@pytest.fixture(scope="module")
def sentencepiece(tmp_path_factory):
    return train_sentencepiece(CODE, 1000, str(tmp_path_factory.mktemp("sp") / "code.model"))


@pytest.fixture(scope="module")
def llama3_layout(tmp_path_factory):
    """A rank file with exactly 128,000 tokens, like the released one: specials must land at 128000+."""
    tokens = [bytes([b]) for b in range(256)]
    tokens += [bytes(p) for p in itertools.product(range(256), repeat=2)]
    tokens += [
        bytes(p)
        for p in itertools.islice(itertools.product(range(97, 123), range(256), range(256)), 128000 - len(tokens))
    ]
    path = tmp_path_factory.mktemp("tk") / "tokenizer.model"
    path.write_bytes(b"".join(base64.b64encode(t) + b" %d\n" % i for i, t in enumerate(tokens)))
    return CwmTokenizer.load(str(path))


@pytest.mark.parametrize("which", ["sentencepiece", "llama3_layout"])
def test_round_trip_and_special_ids(which, request):
    tok = request.getfixturevalue(which)
    assert tok.vocab_size == tok.n_regular + 256
    for text in TEXTS:
        ids = tok.encode(text)
        assert all(i < tok.n_regular for i in ids), "plain text must never become a special token"
        assert tok.decode(ids) == text
    for name, offset in st.NAMED_OFFSETS.items():
        assert tok.special_id(name) == tok.n_regular + offset
    result = trace("def f(s):\n    return s + '<|frame_sep|>'\n", "f", "'x'")
    pieces = trace_format.prompt(result.source) + trace_format.render(result.frames, result.complete)
    ids = tok.encode_pieces(pieces)
    assert trace_format.parse(tok.decode_pieces(ids)[4:])[0] == result.frames
    assert ids.count(tok.special_id(st.FRAME_SEP)) == len(result.frames) + 1


def test_released_layout_ids(llama3_layout):
    assert llama3_layout.n_regular == 128000
    assert [llama3_layout.special_id(n) for n in (st.BEGIN_OF_TEXT, st.END_OF_TEXT, st.EOT, st.FRAME_SEP)] == [
        128000,
        128001,
        128009,
        128100,
    ]
    assert llama3_layout.special_id("<|reserved_special_token_10|>") == 128010
    assert llama3_layout.decode_pieces([128103]) == [special(st.CALL_SEP)]
    assert isinstance(llama3_layout.decode_pieces([128103])[0], SpecialToken)


def test_bad_tokenizer_files_are_named(tmp_path):
    bad = tmp_path / "bad.model"
    bad.write_text("QQ== 0\nnot-a-line\n")
    with pytest.raises(CwmError, match=r"bad\.model:2"):
        CwmTokenizer.load(str(bad))
    with pytest.raises(CwmError, match="not found"):
        CwmTokenizer.load(str(tmp_path / "missing.model"))
