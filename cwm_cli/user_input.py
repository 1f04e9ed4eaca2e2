"""Checks of what a user passes on the command line (flag values, the text files named), each failing with a
one-line CwmError that names the flag or file: argparse's own errors add a usage line."""

import argparse

from cwm_common.errors import CwmError


def require_positive(args: argparse.Namespace, *flags: str, unit: str = "number") -> None:
    """Each flag's value > 0 (None: the flag was not given and has no default)."""
    for flag in flags:
        value = _value(args, flag)
        if value is not None and not value > 0:  # `not >` also refuses NaN
            raise CwmError(f"{flag} must be a positive {unit} (got {value:g})")


def require_non_negative(args: argparse.Namespace, *flags: str, unit: str = "number") -> None:
    """Each flag's value >= 0 (None: the flag was not given and has no default)."""
    for flag in flags:
        value = _value(args, flag)
        if value is not None and not value >= 0:
            raise CwmError(f"{flag} must be a {unit} >= 0 (got {value:g})")


def _value(args: argparse.Namespace, flag: str):
    return getattr(args, flag.removeprefix("--").replace("-", "_"))


def read_text(path: str, what: str) -> str:
    """A UTF-8 text file's contents; `what` says what the file is for (e.g. "--tests file")."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise CwmError(f"{path}: cannot read {what} ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise CwmError(f"{path}: {what} is not UTF-8 text (byte {e.start} is {e.object[e.start]:#04x})") from None


def mesh_flag(text: str, flag: str) -> dict[str, int]:
    """A mesh flag's `axis=size,...` as sizes by axis (-1: the rest of the devices), each axis one of
    cwm_jax.sharding.MESH_AXES."""
    from cwm_jax.sharding import MESH_AXES

    spec = {}
    for part in filter(None, text.split(",")):
        axis, _, size = (s.strip() for s in part.partition("="))
        if axis not in MESH_AXES:
            raise CwmError(f"{flag}: '{part}' names no mesh axis; axes: {', '.join(MESH_AXES)}")
        try:
            spec[axis] = int(size)
        except ValueError:
            raise CwmError(f"{flag}: '{part}' is not axis=size") from None
        if spec[axis] == 0 or spec[axis] < -1:
            raise CwmError(f"{flag}: '{part}' must be a positive size or -1")
    return spec
