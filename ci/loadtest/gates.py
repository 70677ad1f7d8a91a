"""What "good under load" means, as pure functions: a load result against thresholds,
the stress ramp (which rate to try next), and the soak verdict (memory growth, latency
drift). Defaults come from the specification's production alerting: error rate under
1 %, p99 under 10 ms, memory under 90 % of its bound."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from ci.result import Finding


@dataclass(frozen=True)
class LoadResult:
    """One fixed-rate run of the load generator (its JSON output)."""

    requests: int
    ok: int
    client_errors: int
    server_errors: int
    transport_errors: int
    elapsed_s: float
    target_rate: float
    achieved_rate: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    peak_rss_mb: float = 0.0

    @property
    def errors(self) -> int:
        return self.client_errors + self.server_errors + self.transport_errors

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 1.0

    def describe(self) -> str:
        """`500 req/s: p50 1.9 ms, p95 2.6 ms, p99 3.1 ms, 0.00% errors`."""
        return (
            f"{self.achieved_rate:.0f} req/s (target {self.target_rate:.0f}): "
            f"p50 {self.p50_ms:.2f} ms, p95 {self.p95_ms:.2f} ms, p99 {self.p99_ms:.2f} ms, "
            f"{100 * self.error_rate:.2f}% errors ({self.server_errors} 5xx, "
            f"{self.transport_errors} transport, {self.client_errors} 4xx)"
        )


def parse_result(text: str) -> LoadResult:
    """The load generator's `--json` line; ValueError when there is none."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            data = json.loads(line)
            fields = LoadResult.__dataclass_fields__
            missing = [k for k in fields if k not in data and k != "peak_rss_mb"]
            if missing:
                raise ValueError(f"load generator output lacks {', '.join(missing)}")
            return LoadResult(**{k: data[k] for k in fields if k in data})
    raise ValueError("no JSON result in the load generator's output")


@dataclass(frozen=True)
class Thresholds:
    """The gate: every limit must hold."""

    p99_ms: float = 10.0
    error_rate: float = 0.01
    min_rate_ratio: float = 0.95  # achieved / target below this: the rate was not sustained
    max_rss_mb: float = 0.0  # 0 = no memory bound


def breaches(result: LoadResult, limits: Thresholds, check: str = "load") -> list[Finding]:
    """One finding per broken limit, naming the measured value and the limit."""
    found: list[str] = []
    if result.error_rate > limits.error_rate:
        found.append(
            f"error rate {100 * result.error_rate:.2f}% over {100 * limits.error_rate:g}% "
            f"({result.server_errors} 5xx, {result.transport_errors} transport, "
            f"{result.client_errors} 4xx of {result.requests})"
        )
    if result.p99_ms > limits.p99_ms:
        found.append(f"p99 latency {result.p99_ms:.2f} ms over {limits.p99_ms:g} ms")
    if result.achieved_rate < limits.min_rate_ratio * result.target_rate:
        found.append(
            f"rate not sustained: {result.achieved_rate:.0f} req/s of "
            f"{result.target_rate:.0f} req/s"
        )
    if limits.max_rss_mb and result.peak_rss_mb > limits.max_rss_mb:
        found.append(f"peak RSS {result.peak_rss_mb:.0f} MB over {limits.max_rss_mb:g} MB")
    return [Finding(check, text, rule="load-threshold") for text in found]


@dataclass(frozen=True)
class Ramp:
    """Stress: start at `start`, multiply by `factor` while the thresholds hold, up to
    `ceiling`; after the first breach, `refine` bisection steps between the last good
    rate and the first bad one."""

    start: float = 200.0
    factor: float = 1.5
    ceiling: float = 20000.0
    refine: int = 2


def next_rate(ramp: Ramp, tried: Sequence[tuple[float, bool]]) -> float | None:
    """The next rate to try given (rate, sustained) so far; None when done."""
    if not tried:
        return ramp.start
    good = [r for r, ok in tried if ok]
    bad = [r for r, ok in tried if not ok]
    if not bad:
        last = tried[-1][0]
        if last >= ramp.ceiling:
            return None
        return min(ramp.ceiling, last * ramp.factor)
    bisections = len(tried) - 1 - next(i for i, (_, ok) in enumerate(tried) if not ok)
    if bisections >= ramp.refine or not good:
        return None
    low, high = max(good), min(bad)
    if high - low < max(1.0, 0.02 * low):
        return None
    return round((low + high) / 2)


def sustainable(tried: Sequence[tuple[float, bool]]) -> float | None:
    """The highest rate that held (None: not even the first)."""
    good = [r for r, ok in tried if ok]
    return max(good) if good else None


@dataclass(frozen=True)
class SoakLimits:
    """Soak: memory must not grow past `max_rss_growth_mb` and the p99 of the last window
    must stay within `max_p99_drift` times the first window's (above a `p99_floor_ms`,
    below which a ratio means nothing)."""

    max_rss_growth_mb: float = 64.0
    max_p99_drift: float = 2.0
    p99_floor_ms: float = 2.0


def soak_findings(
    windows: Sequence[LoadResult], rss_mb: Sequence[float], limits: SoakLimits
) -> list[Finding]:
    """Findings of a soak run: memory growth (first fifth vs last fifth of the RSS
    samples, so a single spike is not growth) and latency drift between windows."""
    found: list[Finding] = []
    if len(rss_mb) >= 5:
        fifth = max(1, len(rss_mb) // 5)
        early = sum(rss_mb[:fifth]) / fifth
        late = sum(rss_mb[-fifth:]) / fifth
        if late - early > limits.max_rss_growth_mb:
            found.append(
                Finding(
                    "soak",
                    f"memory grew {late - early:.0f} MB ({early:.0f} -> {late:.0f} MB), over "
                    f"{limits.max_rss_growth_mb:g} MB",
                    rule="memory-growth",
                )
            )
    if len(windows) >= 2:
        first, last = windows[0].p99_ms, windows[-1].p99_ms
        if last > limits.p99_floor_ms and last > limits.max_p99_drift * max(first, 1e-9):
            found.append(
                Finding(
                    "soak",
                    f"p99 drifted from {first:.2f} ms to {last:.2f} ms "
                    f"(over {limits.max_p99_drift:g}x)",
                    rule="latency-drift",
                )
            )
    return found
