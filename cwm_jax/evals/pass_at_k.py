"""The unbiased pass@k estimator (Chen et al., 2021): 1 - C(n - c, k) / C(n, k) for n samples, c correct."""

import math


def pass_at_k(n: int, c: int, k: int) -> float:
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def mean_pass_at_k(correct_counts: list[int], n: int, ks: tuple[int, ...]) -> dict[str, float]:
    return {f"pass@{k}": sum(pass_at_k(n, c, k) for c in correct_counts) / len(correct_counts)
            for k in ks if k <= n}
