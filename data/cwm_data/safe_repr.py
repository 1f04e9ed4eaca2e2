"""repr() for trace values: never raises, bounded in size and time, and free of memory addresses.

Rules (documented in WORKSPACE.md):
- a value whose repr is at most `limit` characters gets exactly repr(value);
- a longer one gets the first `limit` characters of a bounded repr followed by "...": builtin containers
  and strings are rendered only as far as needed (a huge list or string costs O(limit), not O(size));
- a repr that raises becomes "<repr of TYPE raised EXC>";
- default object reprs lose their address: "<Foo object at 0x7f..>" -> "<Foo object>", so traces are
  reproducible.
"""

import re

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+>")
_SHORT_SCALARS = frozenset({float, bool, type(None), complex})  # reprs of at most a few dozen characters
_SEQUENCES = (list, tuple, set, frozenset)


class _Full(Exception):
    """The bounded repr has produced more than enough characters."""


def safe_repr(value, limit: int) -> str:
    fast = _fast_repr(value, limit)
    if fast is not None:
        return fast if len(fast) <= limit else fast[:limit] + "..."
    parts: list[str] = []
    size = [0]

    def put(text: str):
        parts.append(text)
        size[0] += len(text)
        if size[0] > limit:
            raise _Full

    try:
        _write(value, put, limit, set())
    except _Full:
        pass
    except Exception as e:  # a user __repr__ may raise anything; RecursionError on deep nesting
        return f"<repr of {type(value).__name__} raised {type(e).__name__}>"
    text = "".join(parts)
    if " at 0x" in text:
        text = _ADDRESS.sub(">", text)
    return text if len(text) <= limit else text[:limit] + "..."


def _fast_repr(value, limit: int) -> str | None:
    """C repr() where its size is known to be bounded (the common case); None where it is not."""
    kind = type(value)
    if kind in _SHORT_SCALARS:
        return repr(value)
    if kind is int:
        return repr(value) if value.bit_length() <= 3 * limit else None
    if kind is str or kind is bytes:
        return repr(value) if len(value) <= limit else None
    if kind in _SEQUENCES and len(value) <= limit:
        types = set(map(type, value))
        if types <= _SHORT_SCALARS or (types <= {int, bool} and max(map(abs, value), default=0) < 10**18):
            return repr(value)
        if types <= {str} and sum(map(len, value)) <= limit:
            return repr(value)
    return None


def _write(value, put, limit: int, active: set):
    kind = type(value)
    if kind in (str, bytes, bytearray) and len(value) > limit:
        put(repr(value[:limit]))
    elif kind in (list, tuple, dict, set, frozenset):
        _write_container(value, kind, put, limit, active)
    else:
        put(repr(value))


def _write_container(value, kind, put, limit: int, active: set):
    if id(value) in active:  # a container inside itself, written as Python does
        put("[...]" if kind is list else "{...}")
        return
    if not value:
        put({list: "[]", tuple: "()", dict: "{}", set: "set()", frozenset: "frozenset()"}[kind])
        return
    active.add(id(value))
    open_, close = {
        list: ("[", "]"),
        tuple: ("(", ")"),
        dict: ("{", "}"),
        set: ("{", "}"),
        frozenset: ("frozenset({", "})"),
    }[kind]
    put(open_)
    for i, item in enumerate(value.items() if kind is dict else value):
        if i:
            put(", ")
        if kind is dict:
            _write(item[0], put, limit, active)
            put(": ")
            _write(item[1], put, limit, active)
        else:
            _write(item, put, limit, active)
    if kind is tuple and len(value) == 1:
        put(",")
    put(close)
    active.discard(id(value))
