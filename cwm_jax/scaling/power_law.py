"""Power-law fits y = a * x^b by least squares in log-log space, with standard errors from the fit's
covariance (what the plots and fit.json report as uncertainty)."""

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class PowerLaw:
    coefficient: float  # a
    exponent: float  # b
    log_coefficient_stderr: float | None  # standard error of ln(a); None with fewer than 3 points
    exponent_stderr: float | None
    points: int

    def __call__(self, x):
        return self.coefficient * np.asarray(x, np.float64) ** self.exponent

    def describe(self, y: str = "y", x: str = "C") -> str:
        unc = f" ± {self.exponent_stderr:.3f}" if self.exponent_stderr is not None else ""
        return f"{y} = {self.coefficient:.4g} · {x}^({self.exponent:.3f}{unc})"

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def fit_power_law(x, y) -> PowerLaw:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"a power-law fit needs two equal-length 1-D arrays of >= 2 points, got {x.shape}, {y.shape}")
    if len(np.unique(x)) < 2:
        raise ValueError("a power-law fit needs at least two distinct x values")
    if (x <= 0).any() or (y <= 0).any():
        raise ValueError("a power-law fit needs positive x and y")
    design = np.stack([np.ones_like(x), np.log(x)], axis=1)
    (log_a, b), *_ = np.linalg.lstsq(design, np.log(y), rcond=None)
    n = len(x)
    stderr: tuple[float | None, float | None] = (None, None)
    if n > 2:
        residuals = np.log(y) - design @ np.array([log_a, b])
        sigma2 = float(residuals @ residuals) / (n - 2)
        cov = sigma2 * np.linalg.inv(design.T @ design)
        stderr = (math.sqrt(cov[0, 0]), math.sqrt(cov[1, 1]))
    return PowerLaw(float(math.exp(log_a)), float(b), stderr[0], stderr[1], n)
