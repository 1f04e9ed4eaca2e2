from more_itertools import chunked, windowed


def batches(items, size):
    if size <= 0:
        raise ValueError("size must be positive")
    return [list(chunk) for chunk in chunked(items, size)]


def moving_sums(values, width):
    sums = []
    for window in windowed(values, width):
        if None in window:
            break
        sums.append(sum(window))
    return sums


def balanced(items, parts):
    out = batches(items, -(-len(items) // parts)) if items else []
    while len(out) < parts:
        out.append([])
    return out
