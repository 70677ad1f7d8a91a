"""The tests of the rollout analysis. One-sided: "is the new colour worse?". Pure
standard library.

- Mann-Whitney U rank test on latency samples (Kayenta's; no assumption about their
  distribution; ties corrected).
- Fisher's exact test on error counts (new vs old colour). The two-proportion z-test
  Kayenta uses is wrong exactly where a rollout needs it, with few errors: 2/100 vs
  0/900 gives p = 1e-5 where the exact answer is 0.0099.
- The exact binomial tail, for "the error rate is above the threshold" on few
  requests."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
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


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _sum_from(start: int, stop: int, log_pmf: Callable[[int], float]) -> float:
    """sum(exp(log_pmf(k))) for k from `start` towards `stop` (inclusive, either
    direction), stopped once the terms no longer matter: walking away from the mode
    they fall off geometrically."""
    step = 1 if stop >= start else -1
    logs: list[float] = []
    for k in range(start, stop + step, step):
        logs.append(log_pmf(k))
        if len(logs) > 8 and logs[-1] < max(logs) - 40:
            break
    if not logs:
        return 0.0
    top = max(logs)
    return math.exp(top) * sum(math.exp(v - top) for v in logs)


def _upper_tail(
    first: int, low: int, high: int, mode: int, log_pmf: Callable[[int], float]
) -> float:
    """P(X >= first) for a unimodal pmf on low..high: summed away from the mode (the
    short side), as one minus the lower tail when `first` lies below the mode."""
    if first <= low:
        return 1.0
    if first > high:
        return 0.0
    if first > mode:
        return min(1.0, _sum_from(first, high, log_pmf))
    return max(0.0, min(1.0, 1.0 - _sum_from(first - 1, low, log_pmf)))


def fisher_greater(err_new: int, n_new: int, err_old: int, n_old: int) -> TestResult:
    """Fisher's exact test that the new colour's error rate is larger than the old
    one's: P(the new colour gets at least `err_new` of all the errors) when errors fall
    on requests at random (hypergeometric). Statistic: the odds ratio's numerator
    err_new * (n_old - err_old)."""
    if n_new <= 0 or n_old <= 0:
        return TestResult(0.0, 1.0)
    errors, total = err_new + err_old, n_new + n_old
    if errors == 0:
        return TestResult(0.0, 1.0)
    base = _log_choose(total, errors)

    def log_pmf(k: int) -> float:
        return _log_choose(n_new, k) + _log_choose(n_old, errors - k) - base

    low, high = max(0, errors - n_old), min(errors, n_new)
    mode = min(high, max(low, int((errors + 1) * (n_new + 1) / (total + 2))))
    p = _upper_tail(err_new, low, high, mode, log_pmf)
    return TestResult(float(err_new * (n_old - err_old)), p)


def binomial_greater(errors: int, n: int, rate: float) -> TestResult:
    """Exact one-sided binomial test that the true error rate exceeds `rate`, having
    seen `errors` of `n`: P(X >= errors) for X ~ Binomial(n, rate)."""
    if n <= 0 or errors <= 0:
        return TestResult(0.0, 1.0)
    if rate <= 0:
        return TestResult(float(errors), 0.0)
    if rate >= 1:
        return TestResult(float(errors), 1.0)
    lp, lq = math.log(rate), math.log1p(-rate)

    def log_pmf(k: int) -> float:
        return _log_choose(n, k) + k * lp + (n - k) * lq

    mode = min(n, int((n + 1) * rate))
    return TestResult(float(errors), _upper_tail(errors, 0, n, mode, log_pmf))


def wilson(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a rate (95% by default): valid near 0 and 1, where
    the normal interval is not."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials**2))
    return max(0.0, centre - half), min(1.0, centre + half)


def median(values: Sequence[float]) -> float:
    """The median (0.0 for no values)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
