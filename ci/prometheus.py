"""Reading a service's Prometheus text exposition (format 0.0.4): its samples, one
histogram's cumulative buckets, the difference of two scrapes, and quantiles
interpolated within buckets the way PromQL's histogram_quantile does."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

_LINE = re.compile(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_labels(text: str) -> dict[str, str]:
    """`a="1",b="x"` -> {"a": "1", "b": "x"}."""
    return {k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in _LABEL.findall(text or "")}


def samples(text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    """(metric name, labels, value) of every sample line; comments and lines whose
    value is not a number are skipped."""
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        yield m.group(1), parse_labels(m.group(2) or ""), value


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile of cumulative `buckets` (upper bound, count), linear within a
    bucket; a rank in the +Inf bucket answers the highest finite bound. None without
    observations."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            width = count - lower_count
            if width <= 0:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / width
        lower_bound, lower_count = bound, count
    return lower_bound


@dataclass(frozen=True)
class Histogram:
    """One histogram series: cumulative (upper bound, count) pairs ending at +Inf,
    and the sum of the observations."""

    buckets: tuple[tuple[float, float], ...] = ()
    total: float = 0.0

    @property
    def count(self) -> float:
        return self.buckets[-1][1] if self.buckets else 0.0

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def quantile(self, q: float) -> float | None:
        """The q-quantile, interpolated within its bucket."""
        return quantile(q, list(self.buckets))

    def since(self, earlier: Histogram) -> Histogram:
        """The observations made after `earlier` was scraped (a counter that went down
        means the process restarted: its new value is all there is)."""
        old = dict(earlier.buckets)
        running = 0.0
        fixed: list[tuple[float, float]] = []
        for bound, count in self.buckets:
            before = old.get(bound, 0.0)
            running = max(running, count - before if count >= before else count)
            fixed.append((bound, running))
        total = self.total - earlier.total if self.total >= earlier.total else self.total
        return Histogram(tuple(fixed), total)


def histograms(
    text: str, family: str, key: Callable[[Mapping[str, str]], str | None]
) -> dict[str, Histogram]:
    """Every series of histogram `family`, named by `key(labels)` (None: not wanted);
    series with the same name are added up."""
    buckets: dict[str, dict[float, float]] = {}
    sums: dict[str, float] = {}
    for name, labels, value in samples(text):
        if name not in (f"{family}_bucket", f"{family}_sum"):
            continue
        series = key(labels)
        if series is None:
            continue
        if name.endswith("_sum"):
            sums[series] = sums.get(series, 0.0) + value
            continue
        le = labels.get("le", "")
        bound = math.inf if le == "+Inf" else float(le)
        per = buckets.setdefault(series, {})
        per[bound] = per.get(bound, 0.0) + value
    return {
        series: Histogram(tuple(sorted(per.items())), sums.get(series, 0.0))
        for series, per in buckets.items()
    }
