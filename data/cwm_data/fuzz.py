"""Input fuzzing for function traces: new argument lists shaped like a function's examples or annotations.

Values are mutated by type (ints near and far from the example, strings over the example's characters,
containers of new lengths with mutated elements), deterministically for a given seed.
"""

import ast
import random
import string

_EXTRA_CHARS = string.ascii_letters + string.digits + " .,;=-_()[]{}"


def parse_args(args_source: str) -> tuple:
    """A positional argument list given as Python literals ("[1, 2], 'a'") -> a tuple of values."""
    return ast.literal_eval(f"({args_source},)")


def example_from_annotation(node: ast.expr | None):
    """A representative value for an annotation like int, str, list[int], dict[str, int]; None if unknown."""
    if isinstance(node, ast.Name):
        return {"int": 3, "float": 1.5, "str": "abc", "bool": True, "list": [1, 2], "dict": {"a": 1}}.get(node.id)
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        inner = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        parts = [example_from_annotation(e) for e in inner]
        if any(p is None for p in parts):
            return None
        kind = node.value.id
        if kind == "list" and len(parts) == 1:
            return [parts[0], parts[0]]
        if kind == "set" and len(parts) == 1:
            return {parts[0]}
        if kind == "tuple":
            return tuple(parts)
        if kind == "dict" and len(parts) == 2:
            return {parts[0]: parts[1]}
    return None


def mutate(value, rng: random.Random, depth: int = 0):
    kind = type(value)
    if kind is bool:
        return rng.random() < 0.5
    if kind is int:
        choice = rng.random()
        if choice < 0.3:
            return value + rng.randint(-3, 3)
        if choice < 0.5:
            return rng.choice([0, 1, -1, 2, 10, 100])
        return rng.randint(-20, 60)
    if kind is float:
        return round(value * rng.uniform(-2, 2) + rng.uniform(-1, 1), 2)
    if kind is str:
        alphabet = sorted(set(value) | set(rng.sample(_EXTRA_CHARS, 8)))
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, len(value) + 4)))
    if depth > 3:
        return value
    if kind in (list, set):
        pool = list(value) or [0]
        items = [mutate(rng.choice(pool), rng, depth + 1) for _ in range(rng.randint(0, len(pool) + 3))]
        if kind is set:
            items = [x for x in items if isinstance(x, (int, str, float, tuple, bool))]
        return kind(items)
    if kind is tuple:
        return tuple(mutate(v, rng, depth + 1) for v in value)
    if kind is dict:
        pairs = list(value.items()) or [("k", 0)]
        return {
            mutate(k, rng, depth + 1): mutate(v, rng, depth + 1)
            for k, v in (rng.choice(pairs) for _ in range(rng.randint(0, len(pairs) + 2)))
        }
    return value


def fuzz_calls(examples: list[tuple], count: int, seed: int) -> list[str]:
    """Up to `count` distinct argument lists (as source): the examples first, then mutations of them."""
    rng = random.Random(seed)
    calls: list[str] = []
    for args in examples:
        source = ", ".join(repr(a) for a in args)
        if source not in calls:
            calls.append(source)
    attempts = 0
    while examples and len(calls) < count and attempts < 20 * count:
        attempts += 1
        source = ", ".join(repr(mutate(a, rng)) for a in rng.choice(examples))
        if source not in calls:
            calls.append(source)
    return calls[:count]
