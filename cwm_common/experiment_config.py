"""Experiment configs: `configs/*.py` files whose get_config() returns a ConfigDict, or a resolved config
saved as JSON (a sweep's runs, a run's manifest), plus command-line overrides `--config.a.b=value` typed by
the field they replace. Unknown fields and bad values are CwmErrors naming the field."""

import ast
import importlib.util
import json
import os
from collections.abc import Sequence

import ml_collections

from cwm_common.errors import CwmError


def load_config(path: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    if not os.path.exists(path):
        raise CwmError(f"{path}: config file not found")
    config = _load_json(path) if path.endswith(".json") else _load_python(path)
    for override in overrides:
        apply_override(config, override)
    return config


def _load_json(path: str) -> ml_collections.ConfigDict:
    with open(path) as f:
        try:
            return ml_collections.ConfigDict(json.load(f))
        except json.JSONDecodeError as e:
            raise CwmError(f"{path}:{e.lineno}: {e.msg}") from None


def _load_python(path: str) -> ml_collections.ConfigDict:
    spec = importlib.util.spec_from_file_location(f"cwm_config_{abs(hash(path))}", path)
    if spec is None or spec.loader is None:
        raise CwmError(f"{path}: not a Python (.py) or JSON (.json) config file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise CwmError(f"{path}:{e.lineno}: {e.msg}") from None
    if not hasattr(module, "get_config"):
        raise CwmError(f"{path}: defines no get_config()")
    return module.get_config()


def apply_override(config: ml_collections.ConfigDict, override: str):
    """Applies one `--config.a.b=value` (or `a.b=value`)."""
    text = override[len("--config.") :] if override.startswith("--config.") else override
    if "=" not in text:
        raise CwmError(f"override '{override}': expected --config.FIELD=VALUE")
    dotted, raw = text.split("=", 1)
    *parents, leaf = dotted.split(".")
    node = config
    for i, key in enumerate(parents):
        if not isinstance(node, ml_collections.ConfigDict) or key not in node:
            raise CwmError(f"config has no field '{'.'.join(parents[: i + 1])}'")
        node = node[key]
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
        raise CwmError(f"config has no field '{dotted}'")
    current = node[leaf]
    node[leaf] = _parse_like(current, raw, dotted)


def _parse_like(current, raw: str, field: str):
    if isinstance(current, ml_collections.ConfigDict):
        raise CwmError(f"config field '{field}' is a group; override its fields (--config.{field}.NAME=...)")
    if raw == "None":  # any field may be unset (a sharding rule that replicates, an optional path)
        return None
    if isinstance(current, str):
        return raw
    if isinstance(current, bool):
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        raise CwmError(f"config field '{field}': expected true or false, got '{raw}'")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        if current is None:
            return raw
        raise CwmError(f"config field '{field}': expected {type(current).__name__}, got '{raw}'") from None
    if current is None or isinstance(value, type(current)):
        return value
    if isinstance(current, float) and isinstance(value, int):
        return float(value)
    if isinstance(current, (tuple, list)) and isinstance(value, (tuple, list)):
        return type(current)(value)
    raise CwmError(f"config field '{field}': expected {type(current).__name__}, got '{raw}'")
