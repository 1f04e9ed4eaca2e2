"""The fits CWM reports from its sweeps, on a sweep's results: loss vs compute (per-size envelopes, and a
power law through the best run at each compute level), and the optimal learning rate and batch size as
power laws of compute (the paper: LR = 19.29 C^-0.177, BS = 30.17 C^0.231; CWM.md gives no unit for BS,
and at 1e19-1e20 FLOPs it reads as tokens: 0.7M-1.2M, so batch sizes are fitted in tokens here)."""

import collections

import numpy as np

from cwm_common.config_rules import require
from cwm_jax.scaling.hyperparameter_optimum import quadratic_optimum
from cwm_jax.scaling.power_law import fit_power_law

OPTIMA = ("best", "quadratic")

CWM_PAPER = {
    "lr_vs_compute": {"coefficient": 19.29, "exponent": -0.177},
    "batch_size_vs_compute": {"coefficient": 30.17, "exponent": 0.231},
}


def envelope(curves: list[list[tuple[float, float]]]) -> list[tuple[float, float]]:
    """The lowest loss reached at or before each compute value, over the given runs' curves."""
    points = sorted(p for curve in curves for p in curve)
    out, best = [], float("inf")
    for compute, loss in points:
        if loss < best:
            best = loss
            out.append((compute, loss))
    return out


def fit_sweep(rows: list[dict], optimum: str = "best") -> dict:
    """fit.json's content; {"error": why} while fewer than two compute levels have finished runs. The LR and
    batch-size laws go through each level's best run (`optimum` "best") or its fitted quadratic minimum
    ("quadratic", hyperparameter_optimum.py); the loss law through each level's best smoothed loss."""
    require(optimum in OPTIMA, "sweep.optimum", f"is {optimum!r}; allowed: {', '.join(OPTIMA)}")
    finished = [r for r in rows if r["smoothed_loss"] is not None]
    levels = collections.defaultdict(list)  # one compute level per (model, token budget)
    for r in finished:
        levels[r["model"], r["token_budget"]].append(r)
    frontier = sorted((min(rs, key=lambda r: r["smoothed_loss"]) for rs in levels.values()), key=lambda r: r["compute"])
    if len({r["compute"] for r in frontier}) < 2:
        return {"error": f"{len(frontier)} compute level(s) with finished runs; fits need 2", "frontier": []}
    compute = np.array([r["compute"] for r in frontier])
    optima = [
        quadratic_optimum(levels[r["model"], r["token_budget"]])
        if optimum == "quadratic"
        else {"lr": r["lr"], "batch_tokens": r["batch_tokens"], "method": "best run"}
        for r in frontier
    ]
    fits = {
        "loss_vs_compute": fit_power_law(compute, [r["smoothed_loss"] for r in frontier]),
        "lr_vs_compute": fit_power_law(compute, [o["lr"] for o in optima]),
        "batch_size_vs_compute": fit_power_law(compute, [o["batch_tokens"] for o in optima]),
    }
    by_model = collections.defaultdict(list)
    for r in finished:
        by_model[r["model"]].append(r["curve"])
    return {
        "compute": "C = M x D, M = 6 N_non-embedding + 6 d L S (window-aware), D = trained tokens",
        **{name: fit.to_json() for name, fit in fits.items()},
        "frontier": [
            {
                **{k: r[k] for k in ("run", "model", "compute", "smoothed_loss", "lr", "batch_size", "batch_tokens")},
                "optimal_lr": o["lr"],
                "optimal_batch_tokens": o["batch_tokens"],
                "optimum": o["method"],
            }
            for r, o in zip(frontier, optima, strict=True)
        ],
        "envelopes": {model: envelope(curves) for model, curves in sorted(by_model.items())},
        "cwm_paper": CWM_PAPER,
    }
