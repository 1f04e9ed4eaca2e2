import re

WORD = re.compile(r"[A-Za-z']+")


def words(text):
    return [w.lower() for w in WORD.findall(text)]


def ngrams(items, n):
    if n <= 0:
        raise ValueError("n must be positive")
    return [tuple(items[i:i + n]) for i in range(len(items) - n + 1)]


def capitalize_sentences(text):
    out = []
    start = True
    for ch in text:
        if start and ch.isalpha():
            out.append(ch.upper())
            start = False
        else:
            out.append(ch)
        if ch in ".!?":
            start = True
    return "".join(out)
