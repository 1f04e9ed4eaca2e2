"""The optimal learning rate and batch size of one compute level from a (quasi-random) search around it:
a quadratic in log LR (and log batch tokens, when the batch varies) fitted to the smoothed losses by least
squares, and its minimum. A search gives its best run's hyperparameters only to the resolution of its
samples; the fitted minimum is between them, which is what the LR(C) and BS(C) laws should go through.
The best run stands in when the fit has too few runs, no minimum (not convex), or a minimum outside the
sampled range (an extrapolation)."""

import numpy as np


def quadratic_optimum(runs: list[dict]) -> dict:
    """{"lr", "batch_tokens", "method": "quadratic" | "best run (why)"} for one compute level's runs."""
    best = min(runs, key=lambda r: r["smoothed_loss"])
    x = np.log([r["lr"] for r in runs])
    y = np.log([r["batch_tokens"] for r in runs])
    loss = np.array([r["smoothed_loss"] for r in runs])
    two_d = np.ptp(y) > 0
    columns = [np.ones_like(x), x, x * x] + ([y, y * y, x * y] if two_d else [])
    if len(runs) < len(columns) + 1:
        return _best(best, f"{len(runs)} runs for {len(columns)} coefficients")
    c = np.linalg.lstsq(np.stack(columns, axis=1), loss, rcond=None)[0]
    if two_d:
        hessian = np.array([[2 * c[2], c[5]], [c[5], 2 * c[4]]])
        if np.any(np.linalg.eigvalsh(hessian) <= 0):
            return _best(best, "the fitted surface has no minimum")
        x_opt, y_opt = np.linalg.solve(hessian, -np.array([c[1], c[3]]))
    else:
        if c[2] <= 0:
            return _best(best, "the fitted curve has no minimum")
        x_opt, y_opt = -c[1] / (2 * c[2]), y[0]
    if not (x.min() <= x_opt <= x.max() and y.min() <= y_opt <= y.max()):
        return _best(best, "the fitted minimum lies outside the sampled range")
    return {"lr": float(np.exp(x_opt)), "batch_tokens": float(np.exp(y_opt)), "method": "quadratic"}


def _best(run: dict, why: str) -> dict:
    return {"lr": run["lr"], "batch_tokens": run["batch_tokens"], "method": f"best run ({why})"}
