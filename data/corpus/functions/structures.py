class Stack:
    def __init__(self):
        self.items = []

    def push(self, item):
        self.items.append(item)
        return len(self.items)

    def pop(self):
        if not self.items:
            raise IndexError("pop from empty stack")
        return self.items.pop()

    def __repr__(self):
        return f"Stack({self.items})"


def eval_rpn(tokens: list[str]) -> int:
    stack = Stack()
    for tok in tokens:
        if tok in "+-*":
            b, a = stack.pop(), stack.pop()
            stack.push(a + b if tok == "+" else a - b if tok == "-" else a * b)
        else:
            stack.push(int(tok))
    return stack.pop()


def group_by_length(words: list[str]) -> dict:
    groups = {}
    for w in words:
        groups.setdefault(len(w), []).append(w)
    return {k: sorted(v) for k, v in sorted(groups.items())}


def flatten(nested: list) -> list:
    out = []
    for item in nested:
        if isinstance(item, list):
            out.extend(flatten(item))
        else:
            out.append(item)
    return out


def merge_sorted(a: list[int], b: list[int]) -> list[int]:
    i = j = 0
    merged = []
    while i < len(a) and j < len(b):
        if a[i] <= b[j]:
            merged.append(a[i])
            i += 1
        else:
            merged.append(b[j])
            j += 1
    merged += a[i:] + b[j:]
    return merged


def insertion_sort(xs: list[int]) -> list[int]:
    xs = list(xs)
    for i in range(1, len(xs)):
        key = xs[i]
        j = i - 1
        while j >= 0 and xs[j] > key:
            xs[j + 1] = xs[j]
            j -= 1
        xs[j + 1] = key
    return xs


def pairs_with_sum(xs: list[int], target: int) -> list:
    seen = set()
    pairs = []
    for x in xs:
        if target - x in seen:
            pairs.append((target - x, x))
        seen.add(x)
    return pairs


def chunks(xs: list[int], size: int):
    for start in range(0, len(xs), size):
        yield xs[start:start + size]


def chunk_sums(xs: list[int], size: int) -> list[int]:
    if size <= 0:
        raise ValueError("size must be positive")
    return [sum(c) for c in chunks(xs, size)]


def safe_divide_all(xs: list[int], d: int) -> list:
    out = []
    for x in xs:
        try:
            out.append(x // d)
        except ZeroDivisionError:
            out.append(None)
    return out


EXAMPLES = {
    "eval_rpn": ["['2', '3', '+', '4', '*']", "['5', '1', '-']"],
    "group_by_length": ["['aa', 'b', 'cc', 'ddd']"],
    "flatten": ["[1, [2, [3, 4]], 5]", "[]"],
    "merge_sorted": ["[1, 4, 9], [2, 3, 10]"],
    "insertion_sort": ["[5, 2, 9, 1]", "[1]"],
    "pairs_with_sum": ["[1, 2, 3, 4, 5], 6"],
    "chunk_sums": ["[1, 2, 3, 4, 5], 2", "[1], 0"],
    "safe_divide_all": ["[4, 9], 2", "[1, 2], 0"],
}
