"""Bench results in the pipeline's one history store: one run per bench stage run
(kind "bench", meta {"mode": ...}, keyed by commit, branch and machine), one measurement
per benchmark (suite "bench.wall" or "bench.instructions"), with the comparison's
verdict in `extra` so a trend chart can mark regressions."""

from __future__ import annotations

from typing import Any

from ci.bench.compare import Report, Row
from ci.history import Measurement, RunInfo, open_store
from ci.settings import Settings

KIND = "bench"


def suite(mode: str) -> str:
    """The measurement suite of a mode."""
    return f"bench.{mode}"


def measurement(r: Row, report: Report) -> Measurement | None:
    """The history measurement of a row (None for a benchmark head no longer has)."""
    if r.head is None:
        return None
    extra: dict[str, Any] = {
        "low": r.head.low,
        "high": r.head.high,
        "verdict": r.verdict.value,
    }
    if r.base is not None:
        extra["base"] = r.base.value
    if r.change is not None:
        extra.update(change=r.change.ratio, change_low=r.change.low, change_high=r.change.high)
    if r.peak_rss is not None:
        extra["peak_rss"] = r.peak_rss
    if r.breaches:
        extra["breaches"] = list(r.breaches)
    if report.base_commit:
        extra["base_commit"] = report.base_commit
    return Measurement(suite(report.mode), r.name, r.head.value, r.unit, extra)


def record(settings: Settings, run: RunInfo, report: Report) -> tuple[str, str]:
    """Store the run and its measurements; returns (store id, store location)."""
    values = [m for m in (measurement(r, report) for r in report.rows) if m is not None]
    with open_store(settings) as store:
        return store.record(run, values), store.location
