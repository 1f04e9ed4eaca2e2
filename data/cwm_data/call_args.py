"""Argument lists as Python source, the form the tracer evaluates ("[1, 2], key='a'")."""

import json

from cwm_common.errors import CwmError


def from_json(args_json: str | None, kwargs_json: str | None) -> str:
    """Python argument-list source from a JSON array of positional and a JSON object of keyword args."""
    args = _load(args_json, "--args", list, [])
    kwargs = _load(kwargs_json, "--kwargs", dict, {})
    bad = [k for k in kwargs if not k.isidentifier()]
    if bad:
        raise CwmError(f"--kwargs: {bad[0]!r} is not a Python identifier")
    return ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])


def _load(text: str | None, flag: str, kind: type, default):
    if text is None:
        return default
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise CwmError(f"{flag}: not valid JSON ({e.msg} at char {e.pos})") from None
    if not isinstance(value, kind):
        raise CwmError(f"{flag}: expected a JSON {'array' if kind is list else 'object'}, got {type(value).__name__}")
    return value
