"""Two runs compared step by step (`cwm repro compare A B`): the first step where the data differ (the
batch checksums) or one of the deterministic metrics differs beyond atol + rtol x |B|, and what differs
between their manifests. The metrics are checked together because a change shows first in whichever moves
first: a learning-rate change at step N moves the logged lr at N but the loss (taken before the update) only
at N+1. A step logged twice (a crash after logging it, then a resume) counts as the resumed run logged it."""

import dataclasses
import json
import math
import os

from cwm_common.errors import CwmError

# Functions of the data, the parameters and the schedule; timings (tokens_per_s, mfu) are not.
DETERMINISTIC_METRICS = ("loss", "grad_norm", "lr")


@dataclasses.dataclass
class Comparison:
    steps: list[int]  # compared: logged by both
    first_divergent: int | None
    reason: str
    bitwise: bool  # every compared metric exactly equal
    max_abs_diff: float
    max_rel_diff: float
    rows: list[tuple]  # (step, a, b, abs diff, rel diff, within tolerance) for the first metric
    only_in_a: list[int]
    only_in_b: list[int]
    manifest_diff: list[str]


def read_metrics(workdir: str) -> dict[int, dict]:
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        raise CwmError(f"{path}: no metrics (is {workdir} a training run's workdir?)")
    records = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    record = json.loads(line)
                    records[int(record["step"])] = record
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    raise CwmError(f"{path}:{number}: not a metrics record with a step") from None
    return records


def compare_runs(a: str, b: str, metrics=DETERMINISTIC_METRICS, rtol: float = 0.0, atol: float = 0.0) -> Comparison:
    ra, rb = read_metrics(a), read_metrics(b)
    steps = sorted(set(ra) & set(rb))
    if not steps:
        raise CwmError(f"{a} and {b} have no step in common")
    first, reason, bitwise, max_abs, max_rel, rows = None, "", True, 0.0, 0.0, []
    for step in steps:
        x, y = ra[step], rb[step]
        if first is None and x.get("data_checksum", 0) != y.get("data_checksum", 0):
            first, reason = step, "the training batches differ (data_checksum)"
        for i, metric in enumerate(metrics):
            if metric not in x or metric not in y:
                raise CwmError(f"step {step}: metric '{metric}' is missing from {a if metric not in x else b}")
            diff = abs(x[metric] - y[metric])
            rel = diff / abs(y[metric]) if y[metric] else (0.0 if diff == 0 else math.inf)
            ok = diff <= atol + rtol * abs(y[metric])
            if i == 0:
                rows.append((step, x[metric], y[metric], diff, rel, ok))
            max_abs, max_rel = max(max_abs, diff), max(max_rel, rel)
            bitwise &= diff == 0
            if first is None and not ok:
                first, reason = step, f"{metric} differs by {diff:.3g} (relative {rel:.3g})"
    return Comparison(
        steps,
        first,
        reason,
        bitwise,
        max_abs,
        max_rel,
        rows,
        sorted(set(ra) - set(rb)),
        sorted(set(rb) - set(ra)),
        manifest_diff(a, b),
    )


def manifest_diff(a: str, b: str) -> list[str]:
    """`key: A -> B` for every manifest field that differs (host-specific paths included)."""
    manifests = []
    for workdir in (a, b):
        path = os.path.join(workdir, "manifest.json")
        if not os.path.exists(path):
            return [f"{path} missing: manifests not compared"]
        with open(path) as f:
            manifests.append(_flatten(json.load(f)))
    ma, mb = manifests
    return [f"{k}: {ma.get(k)!r} -> {mb.get(k)!r}" for k in sorted(set(ma) | set(mb)) if ma.get(k) != mb.get(k)]


def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): value}
