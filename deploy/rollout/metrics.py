"""Counters of one colour at one instant, from the service's Prometheus `/metrics` and
(single host) HAProxy's `show stat`; the `Sample` of an interval is the difference of
two of them. Latency quantiles come from the service's own histogram
(`http_request_duration_seconds`, API routes only: /health and /metrics are not
traffic), interpolated within buckets like PromQL's histogram_quantile."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ci.prometheus import Histogram, parse_labels, quantile, samples

__all__ = ["Counters", "Sample", "from_prometheus", "merge", "parse_labels", "quantile", "sample"]

NOT_TRAFFIC = frozenset({"/health", "/metrics"})


@dataclass(frozen=True)
class Counters:
    """Cumulative counts of one colour at `at` (monotonic seconds)."""

    at: float
    requests: float = 0.0  # API requests the service answered
    errors: float = 0.0  # ... of which 5xx
    buckets: tuple[tuple[float, float], ...] = ()  # (upper bound s, cumulative count)
    latency_sum: float = 0.0  # seconds
    proxy_requests: float = 0.0  # requests the proxy sent to the colour (0: no proxy data)
    proxy_5xx: float = 0.0
    proxy_failures: float = 0.0  # connection errors, response errors and timeouts it saw


@dataclass(frozen=True)
class Sample:
    """One colour over one interval ending at `at`."""

    at: float
    requests: int
    errors: int
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    notes: tuple[str, ...] = field(default=())
    # the interval's latency histogram (upper bound s, cumulative count): windows merge
    # these, so a window's quantile is that of all its requests
    buckets: tuple[tuple[float, float], ...] = field(default=(), repr=False)

    @property
    def error_rate(self) -> float | None:
        """errors / requests, None without requests."""
        return self.errors / self.requests if self.requests else None


def from_prometheus(text: str, at: float, skip: Iterable[str] = NOT_TRAFFIC) -> Counters:
    """The service's counters from its /metrics text."""
    skip = frozenset(skip)
    requests = errors = total_sum = 0.0
    buckets: dict[float, float] = {}
    for name, labels, value in samples(text):
        if labels.get("route") in skip:
            continue
        if name == "http_requests_total":
            requests += value
            if labels.get("status", "").startswith("5"):
                errors += value
        elif name == "http_request_duration_seconds_bucket":
            le = labels.get("le", "")
            bound = math.inf if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + value
        elif name == "http_request_duration_seconds_sum":
            total_sum += value
    return Counters(
        at=at,
        requests=requests,
        errors=errors,
        buckets=tuple(sorted(buckets.items())),
        latency_sum=total_sum,
    )


def haproxy_servers(csv_text: str, backend: str) -> dict[str, dict[str, str]]:
    """`show stat` CSV -> {server name: its columns} for one backend."""
    text = csv_text.lstrip("# ").strip()
    rows = csv.DictReader(io.StringIO(text))
    out: dict[str, dict[str, str]] = {}
    for row in rows:
        if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND"):
            out[str(row.get("svname"))] = {k: v or "" for k, v in row.items() if k}
    return out


def _num(row: Mapping[str, str], key: str) -> float:
    try:
        return float(row.get(key) or 0)
    except ValueError:
        return 0.0


def with_proxy(counters: Counters, row: Mapping[str, str]) -> Counters:
    """Add what HAProxy saw of this colour: responses by class, connection errors
    (econ), response errors and server timeouts (eresp)."""
    responses = sum(_num(row, f"hrsp_{c}") for c in ("1xx", "2xx", "3xx", "4xx", "5xx", "other"))
    failures = _num(row, "econ") + _num(row, "eresp")
    return Counters(
        at=counters.at,
        requests=counters.requests,
        errors=counters.errors,
        buckets=counters.buckets,
        latency_sum=counters.latency_sum,
        proxy_requests=responses + failures,
        proxy_5xx=_num(row, "hrsp_5xx"),
        proxy_failures=failures,
    )


def _delta(new: float, old: float) -> float:
    """A counter's increase; a reset (process restarted) counts from zero."""
    return new - old if new >= old else new


def sample(prev: Counters, cur: Counters) -> Sample:
    """The interval between two snapshots of one colour. Requests: the larger of what
    the service and the proxy counted (a connection the service never saw still was a
    request); errors: the service's or the proxy's 5xx, whichever is larger, plus the
    failures only the proxy saw."""
    svc_requests = _delta(cur.requests, prev.requests)
    svc_errors = _delta(cur.errors, prev.errors)
    proxy_requests = _delta(cur.proxy_requests, prev.proxy_requests)
    proxy_5xx = _delta(cur.proxy_5xx, prev.proxy_5xx)
    proxy_failures = _delta(cur.proxy_failures, prev.proxy_failures)
    requests = max(svc_requests, proxy_requests)
    errors = min(requests, max(svc_errors, proxy_5xx) + proxy_failures)
    latency = Histogram(cur.buckets, cur.latency_sum).since(
        Histogram(prev.buckets, prev.latency_sum)
    )

    def ms(q: float) -> float | None:
        value = latency.quantile(q)
        return None if value is None else value * 1000

    return Sample(
        at=cur.at,
        requests=round(requests),
        errors=round(errors),
        p50_ms=ms(0.50),
        p95_ms=ms(0.95),
        p99_ms=ms(0.99),
        mean_ms=None if latency.mean is None else latency.mean * 1000,
        buckets=latency.buckets,
    )


def merge(histograms: Iterable[tuple[tuple[float, float], ...]]) -> list[tuple[float, float]]:
    """The sum of cumulative histograms (bounds missing from one count as its next
    larger bound's count would: only shared layouts are exact, as Prometheus's are)."""
    total: dict[float, float] = {}
    for hist in histograms:
        for bound, count in hist:
            total[bound] = total.get(bound, 0.0) + count
    return sorted(total.items())
