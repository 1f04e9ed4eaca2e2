"""The one way configs are checked: every failure is a CwmError "config field 'FIELD' RULE", naming the
dotted field and what it must be."""

from collections.abc import Iterable
from typing import Any

from cwm_common.errors import CwmError


def config_error(field: str, rule: str, kind: str = "config") -> CwmError:
    return CwmError(f"{kind} field '{field}' {rule}")


def field_value(cfg: Any, field: str) -> Any:
    value = cfg
    for part in field.split("."):
        value = value[part]
    return value


def require(ok: bool, field: str, rule: str, kind: str = "config"):
    if not ok:
        raise config_error(field, rule, kind)


def require_int(cfg: Any, field: str, minimum: int = 1) -> int:
    value = field_value(cfg, field)
    require(
        isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
        field,
        f"must be an integer >= {minimum}, got {value!r}",
    )
    return value


def require_choice(cfg: Any, field: str, allowed: Iterable[str]) -> str:
    value = field_value(cfg, field)
    allowed = tuple(allowed)
    require(value in allowed, field, f"is {value!r}; allowed: {', '.join(allowed)}")
    return value
