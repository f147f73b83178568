"""Small statistics helpers shared across safetyscope."""

from __future__ import annotations

import math


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score confidence interval for a binomial proportion ``k / n``.

    Args:
        k: number of successes (``0 <= k <= n``).
        n: number of trials; ``n == 0`` gives the uninformative interval ``(0.0, 1.0)``.
        z: normal quantile (1.96 for a two-sided 95% interval).

    Returns:
        ``(low, high)``, clipped to ``[0, 1]``.
    """
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(values: list[float] | tuple[float, ...], z: float = 1.96) -> tuple[float, float]:
    """Normal-approximation confidence interval of a mean: ``mean ± z · sd / sqrt(n)`` (sample sd).

    One value gives the degenerate interval ``(v, v)``; no values raise ``ValueError``.
    """
    n = len(values)
    if n == 0:
        raise ValueError("need at least one value")
    m = math.fsum(values) / n
    if n == 1:
        return (m, m)
    sd = math.sqrt(math.fsum((v - m) ** 2 for v in values) / (n - 1))
    half = z * sd / math.sqrt(n)
    return (m - half, m + half)
