from textkit.tokens import ngrams, words


class Vocabulary:
    def __init__(self):
        self.counts = {}

    def add(self, word):
        self.counts[word] = self.counts.get(word, 0) + 1
        return self.counts[word]

    def most_common(self, k):
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return ranked[:k]


def build_vocabulary(text):
    vocab = Vocabulary()
    for w in words(text):
        vocab.add(w)
    return vocab


def bigram_counts(text):
    counts = {}
    for pair in ngrams(words(text), 2):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def type_token_ratio(text):
    tokens = words(text)
    if not tokens:
        return 0.0
    return round(len(set(tokens)) / len(tokens), 3)
