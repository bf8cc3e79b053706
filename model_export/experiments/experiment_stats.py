"""The statistics of an experiment report: intervals and tests for click-through proportions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

CONFIDENCE = 0.95
Z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)


def wilson(successes: int, trials: int, z: float = Z) -> tuple[float, float]:
    """The Wilson score interval of a proportion.

    Not the normal approximation p ± z·sqrt(p(1-p)/n): CTRs sit near 0 and many variants have few
    impressions, where that interval is far too narrow (zero width at 0 clicks) and can go below 0. Wilson's
    stays inside [0, 1], is non-degenerate at 0 and n, and keeps close to its nominal coverage for small n.
    """
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    denominator = 1 + z2 / trials
    center = (p + z2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denominator
    # Exact at the edges: rounding would otherwise leave 1e-18 where the formula gives 0.
    low = 0.0 if successes == 0 else max(0.0, center - half)
    high = 1.0 if successes == trials else min(1.0, center + half)
    return low, high


def newcombe(x1: int, n1: int, x2: int, n2: int, z: float = Z) -> tuple[float, float, float]:
    """p2 - p1 and Newcombe's hybrid score interval for it (his method 10, from the two Wilson intervals).

    Chosen over the Wald interval of the difference for the same reason Wilson is chosen per variant: it
    behaves at small counts and near 0, where the Wald interval is too narrow.
    """
    p1, p2 = x1 / n1, x2 / n2
    low1, high1 = wilson(x1, n1, z)
    low2, high2 = wilson(x2, n2, z)
    difference = p2 - p1
    low = difference - math.sqrt((p2 - low2) ** 2 + (high1 - p1) ** 2)
    high = difference + math.sqrt((high2 - p2) ** 2 + (p1 - low1) ** 2)
    return difference, low, high


def two_proportion_p_value(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z test of p1 = p2."""
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0  # both variants all clicks or all misses: no evidence of a difference
    z = abs(x2 / n2 - x1 / n1) / se
    # erfc keeps its precision far into the tail, where 1 - cdf(z) would round to 0.
    return math.erfc(z / math.sqrt(2))


def chi_square_p_value(observed: Sequence[int], shares: Sequence[float]) -> float:
    """Goodness-of-fit p-value of observed counts against expected shares (normalised to sum to 1)."""
    # scipy.special, not scipy.stats: the same survival function without seconds of import time.
    from scipy.special import chdtrc

    total, share_sum = sum(observed), sum(shares)
    expected = [total * share / share_sum for share in shares]
    statistic = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True) if e > 0)
    return float(chdtrc(len(observed) - 1, statistic))
