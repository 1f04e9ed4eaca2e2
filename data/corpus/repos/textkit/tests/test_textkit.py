import pytest

from textkit.stats import bigram_counts, build_vocabulary, type_token_ratio
from textkit.tokens import capitalize_sentences, ngrams, words


def test_words():
    assert words("It's a test, a TEST.") == ["it's", "a", "test", "a", "test"]


def test_ngrams():
    assert ngrams([1, 2, 3], 2) == [(1, 2), (2, 3)]
    with pytest.raises(ValueError):
        ngrams([1], 0)


def test_capitalize():
    assert capitalize_sentences("hi. how are you? fine") == "Hi. How are you? Fine"


def test_vocabulary():
    vocab = build_vocabulary("the cat saw the dog")
    assert vocab.most_common(1) == [("the", 2)]


def test_bigrams_and_ratio():
    assert bigram_counts("a b a b")[("a", "b")] == 2
    assert type_token_ratio("a b a b") == 0.5
    assert type_token_ratio("") == 0.0
