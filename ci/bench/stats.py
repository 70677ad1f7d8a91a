"""The statistics of a base-vs-head comparison. Pure functions over numbers.

Wall clock. Each side of a benchmark is measured in several interleaved rounds; a round
is one short criterion run whose `sample.json` gives per-iteration times (each sample's
time divided by its iteration count). On a shared machine, interference (another
process on the core, preemption, a cache flushed by a neighbour) only ever ADDS time,
so the fast end of the distribution is what the code costs and the rest is what the
machine did. A side's statistic is therefore a low quantile of its pooled per-iteration
times: by default the minimum (`[bench] quantile = 0`). Measured on this project's
2-core machine at load 6-7, the minimum of 5 rounds x 20 samples stayed within 7% of
the truth where the 20th percentile was off by up to 75% (scripts/bench_gate.py). The
change is the ratio of head's statistic to base's, with a two-level bootstrap
confidence interval (rounds resampled, then samples within them: the interval covers
the round-to-round drift too). A change is significant when that interval excludes
zero.

Instructions. Callgrind counts are deterministic up to a few instructions (paths,
environment), so one run per side is enough: the change is the ratio of the counts, and
it is significant when it exceeds the noise floor (`[bench] instruction_noise`).
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

BOOTSTRAP_RESAMPLES = 1000


@dataclass(frozen=True)
class Estimate:
    """One side's statistic and its confidence interval, in the benchmark's unit."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Change:
    """head / base - 1, as a fraction (0.12 = 12% slower), with its confidence interval."""

    ratio: float
    low: float
    high: float
    significant: bool

    @property
    def percent(self) -> float:
        """The change in percent."""
        return self.ratio * 100.0


def quantile(values: Sequence[float], q: float) -> float:
    """The `q` quantile of `values` (linear interpolation between order statistics)."""
    if not values:
        raise ValueError("quantile of no values")
    if q <= 0.0:
        return min(values)  # the default statistic, and the bootstrap's hot path
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def per_iteration(iters: Sequence[float], times: Sequence[float]) -> list[float]:
    """Per-iteration times of criterion's samples (`sample.json`: iters, times in ns).
    Samples with no iterations are dropped."""
    return [t / n for n, t in zip(iters, times, strict=True) if n > 0]


def _pooled(rounds: Sequence[Sequence[float]]) -> list[float]:
    return [x for r in rounds for x in r]


def _resample(rounds: Sequence[Sequence[float]], rng: random.Random) -> list[float]:
    """A two-level bootstrap resample: rounds drawn with replacement (so the interval
    reflects how much rounds differ, which is most of a busy machine's noise), then
    samples drawn with replacement within each drawn round."""
    out: list[float] = []
    count = len(rounds)
    for _ in range(count):
        r = rounds[int(rng.random() * count)] if count > 1 else rounds[0]
        n = len(r)
        out.extend(r[int(rng.random() * n)] for _ in range(n))
    return out


def _seed(name: str) -> int:
    """A fixed seed per benchmark: the same data always gives the same interval."""
    return zlib.crc32(name.encode())


def estimate(
    rounds: Sequence[Sequence[float]], q: float, confidence: float, name: str = ""
) -> Estimate:
    """The `q` quantile of one side's pooled per-iteration times, with a bootstrap
    confidence interval."""
    pooled = _pooled(rounds)
    if not pooled:
        raise ValueError(f"{name or 'benchmark'}: no samples")
    rng = random.Random(_seed(name))
    boot = sorted(quantile(_resample(rounds, rng), q) for _ in range(BOOTSTRAP_RESAMPLES // 4))
    tail = (1.0 - confidence) / 2.0
    return Estimate(quantile(pooled, q), quantile(boot, tail), quantile(boot, 1.0 - tail))


def compare_wall(
    base: Sequence[Sequence[float]],
    head: Sequence[Sequence[float]],
    q: float,
    confidence: float,
    name: str = "",
) -> Change:
    """head/base - 1 of the `q` quantiles of two sides' per-iteration times (one list per
    round), with a bootstrap confidence interval at `confidence`."""
    b = quantile(_pooled(base), q)
    h = quantile(_pooled(head), q)
    if b <= 0:
        raise ValueError(f"{name or 'benchmark'}: base time is not positive")
    rng = random.Random(_seed(name))
    ratios = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        rb = quantile(_resample(base, rng), q)
        rh = quantile(_resample(head, rng), q)
        ratios.append(rh / rb - 1.0 if rb > 0 else math.inf)
    ratios.sort()
    tail = (1.0 - confidence) / 2.0
    low, high = quantile(ratios, tail), quantile(ratios, 1.0 - tail)
    return Change(h / b - 1.0, low, high, significant=low > 0.0 or high < 0.0)


def compare_counts(base: float, head: float, noise: float) -> Change:
    """head/base - 1 of two instruction counts; `noise` (a fraction) is the interval
    around it, and only a change beyond it is significant."""
    if base <= 0:
        raise ValueError("base instruction count is not positive")
    ratio = head / base - 1.0
    return Change(ratio, ratio - noise, ratio + noise, significant=abs(ratio) > noise)
