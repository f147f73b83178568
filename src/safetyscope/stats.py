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
