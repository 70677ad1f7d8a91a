"""The two tests of the relative check, as Kayenta runs them for canaries: the
Mann-Whitney U rank test on latency samples (no assumption about their distribution;
ties corrected) and the two-proportion z-test on error counts. One-sided: "is the new
colour worse than the old one?". Pure standard library."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2))


@dataclass(frozen=True)
class TestResult:
    """A one-sided test's statistic and p-value (1.0: no evidence at all)."""

    statistic: float
    p_value: float


def _ranks(values: Sequence[float]) -> tuple[list[float], float]:
    """Mid-ranks (1-based) of `values` and the tie term sum(t^3 - t)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    ties = 0.0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        rank = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[order[k]] = rank
        t = j - i + 1
        ties += t**3 - t
        i = j + 1
    return ranks, ties


def mann_whitney_greater(new: Sequence[float], old: Sequence[float]) -> TestResult:
    """Mann-Whitney U test that `new` tends to be larger than `old` (normal
    approximation with tie and continuity corrections). U counts the pairs where the
    new sample is larger (ties count one half)."""
    n1, n2 = len(new), len(old)
    if n1 == 0 or n2 == 0:
        return TestResult(0.0, 1.0)
    ranks, ties = _ranks([*new, *old])
    u = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
    n = n1 + n2
    mean = n1 * n2 / 2
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return TestResult(u, 1.0)
    z = (u - mean - 0.5) / math.sqrt(var)
    return TestResult(u, normal_sf(z))


def proportion_greater(err_new: int, n_new: int, err_old: int, n_old: int) -> TestResult:
    """Two-proportion z-test (pooled) that the new error rate is larger than the old."""
    if n_new <= 0 or n_old <= 0:
        return TestResult(0.0, 1.0)
    p_new, p_old = err_new / n_new, err_old / n_old
    pooled = (err_new + err_old) / (n_new + n_old)
    var = pooled * (1 - pooled) * (1 / n_new + 1 / n_old)
    if var <= 0:
        return TestResult(0.0, 1.0)
    z = (p_new - p_old) / math.sqrt(var)
    return TestResult(z, normal_sf(z))


def median(values: Sequence[float]) -> float:
    """The median (0.0 for no values)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
