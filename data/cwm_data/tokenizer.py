"""Tokenizers with CWM's special tokens at fixed ids: N regular tokens, then the 256 specials at N + offset.

- `CwmTokenizer.from_tiktoken(path)`: the released Llama-3-style `tokenizer.model` (base64 token + rank per
  line, 128,000 regular tokens), so specials land at 128000 + offset as in CWM.
- `train_sentencepiece(texts, vocab_size)`: a byte-fallback BPE trained on the project's own corpora (for
  scaling sweeps); the same layout with N = its vocabulary.

Plain text is always encoded as ordinary text: a string spelling "<|frame_sep|>" never becomes that token.
Only `encode_pieces` emits special ids, for SpecialToken pieces built by the formats.
"""

import base64
import io
import os
from collections.abc import Iterable

import sentencepiece as spm

from cwm_common.errors import CwmError
from cwm_data.special_tokens import NUM_SPECIAL, SpecialToken, special_token_strings

# The Llama-3 pre-tokenization pattern (CWM.md section 2).
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
    r"\s*[\r\n]+|\s+(?!\S)|\s+"
)


class CwmTokenizer:
    """Token ids for text and special tokens; `n_regular` ordinary ids come first."""

    def __init__(self, encode_ordinary, decode_bytes, n_regular: int, description: str):
        self._encode, self._decode_bytes = encode_ordinary, decode_bytes
        self.n_regular = n_regular
        self.vocab_size = n_regular + NUM_SPECIAL
        self.description = description
        self._specials = special_token_strings()
        self._special_ids = {name: n_regular + i for i, name in enumerate(self._specials)}

    # --- construction ---
    @classmethod
    def from_sentencepiece(cls, model_path: str) -> "CwmTokenizer":
        try:
            sp = spm.SentencePieceProcessor(model_file=model_path)
        except (OSError, RuntimeError) as e:
            raise CwmError(f"{model_path}: not a SentencePiece model ({e})") from None
        if sp.decode(sp.encode("a") + sp.encode("b")) != "ab":
            # Pieces are encoded one by one and decoded together: a dummy "▁" prefix would add spaces.
            raise CwmError(f"{model_path}: the model adds a dummy prefix; train it with add_dummy_prefix=false")
        return cls(sp.encode, lambda ids: sp.decode(ids).encode(), sp.get_piece_size(), f"sentencepiece:{model_path}")

    @classmethod
    def from_tiktoken(cls, model_path: str) -> "CwmTokenizer":
        import tiktoken

        ranks = load_tiktoken_ranks(model_path)
        n = len(ranks)
        specials = {name: n + i for i, name in enumerate(special_token_strings())}
        encoding = tiktoken.Encoding(
            name=os.path.basename(model_path), pat_str=LLAMA3_PATTERN, mergeable_ranks=ranks, special_tokens=specials
        )
        return cls(encoding.encode_ordinary, encoding.decode_bytes, n, f"tiktoken:{model_path}")

    @classmethod
    def load(cls, path: str) -> "CwmTokenizer":
        """A SentencePiece `.model` file, or else a tiktoken rank file."""
        if not os.path.exists(path):
            raise CwmError(f"{path}: tokenizer file not found")
        with open(path, "rb") as f:
            head = f.read(64)
        # tiktoken files are ASCII lines "base64 rank"; SentencePiece models are binary protobufs.
        looks_tiktoken = head and all(32 <= b < 127 or b in (10, 13) for b in head)
        return cls.from_tiktoken(path) if looks_tiktoken else cls.from_sentencepiece(path)

    # --- use ---
    def special_id(self, name: str) -> int:
        try:
            return self._special_ids[name]
        except KeyError:
            raise CwmError(f"unknown special token {name!r}") from None

    def encode(self, text: str) -> list[int]:
        """Ordinary text only: special-token spellings stay text."""
        return list(self._encode(text))

    def encode_pieces(self, pieces: Iterable[str]) -> list[int]:
        ids: list[int] = []
        for piece in pieces:
            if isinstance(piece, SpecialToken):
                ids.append(self.special_id(piece))
            elif piece:
                ids.extend(self._encode(piece))
        return ids

    def decode_pieces(self, ids: Iterable[int]) -> list[str]:
        """Pieces (SpecialToken for special ids), the inverse of encode_pieces."""
        pieces: list[str] = []
        run: list[int] = []
        for i in ids:
            if i >= self.n_regular:
                if run:
                    pieces.append(self._decode_bytes(run).decode("utf-8", errors="replace"))
                    run = []
                if i >= self.vocab_size:
                    raise CwmError(f"token id {i} is outside the vocabulary ({self.vocab_size})")
                pieces.append(SpecialToken(self._specials[i - self.n_regular]))
            else:
                run.append(int(i))
        if run:
            pieces.append(self._decode_bytes(run).decode("utf-8", errors="replace"))
        return pieces

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.decode_pieces(ids))


def load_tiktoken_ranks(path: str) -> dict[bytes, int]:
    ranks = {}
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
            except ValueError:
                raise CwmError(f"{path}:{lineno}: expected 'BASE64TOKEN RANK'") from None
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise CwmError(f"{path}: ranks must be 0..{len(ranks) - 1} without gaps")
    return ranks


def train_sentencepiece(texts: Iterable[str], vocab_size: int, model_path: str) -> CwmTokenizer:
    """Trains a lossless byte-fallback BPE on `texts` (vocab_size regular tokens) and saves it."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="bpe",
        # Exact round trips for code: no normalization, whitespace kept, raw bytes for unseen characters.
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=False,
        byte_fallback=True,
        allow_whitespace_only_pieces=True,
        split_digits=True,
        max_sentence_length=1 << 20,
        bos_id=-1,
        eos_id=-1,
        pad_id=-1,
        unk_id=0,
        minloglevel=2,
        num_threads=os.cpu_count() or 1,
    )
    with open(model_path, "wb") as f:
        f.write(model.getvalue())
    return CwmTokenizer.from_sentencepiece(model_path)
