"""What the HTML report and the metrics read from the history store: recorded `invoke ci`
runs with their stage durations, benchmark and coverage series, deployments. Read-only:
an empty or missing store is "no data yet"; a corrupt one is a HistoryError (one line)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ci.errors import NoHistoryYet
from ci.history import Deployment, HistoryStore, Measurement, StoredRun, open_store
from ci.reports.svg import Point
from ci.settings import Settings

BENCH_CHARTS = 12  # benchmarks drawn, one small chart each; the rest are named below them
COVERAGE_SUITE, COVERAGE_NAME = "coverage", "total"
REGRESSION = "regression"


@dataclass
class RunRecord:
    """One recorded run and the measurements of one suite."""

    stored: StoredRun
    values: list[Measurement]

    @property
    def at(self) -> datetime:
        return self.stored.run.started_at

    def label(self) -> str:
        run = self.stored.run
        where = f"{run.branch or '-'}@{run.commit[:8] or '-'}"
        return where + ("+" if run.dirty else "")


@dataclass
class History:
    """Everything the reports take from the history store (oldest first)."""

    location: str = ""
    ci: list[RunRecord] = field(default_factory=list)
    bench: list[RunRecord] = field(default_factory=list)
    coverage: list[RunRecord] = field(default_factory=list)
    deployments: list[Deployment] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.ci or self.bench or self.coverage or self.deployments)


def _records(
    store: HistoryStore, kind: str, limit: int, suite_prefix: str, since: datetime | None
) -> list[RunRecord]:
    found = []
    for stored in store.runs(kind, since=since, limit=limit):
        values = [m for m in store.measurements(stored.id) if m.suite.startswith(suite_prefix)]
        found.append(RunRecord(stored, values))
    return found


def read(settings: Settings, *, limit: int, since: datetime | None = None) -> History:
    """The last `limit` runs of each kind (since `since`) and every deployment since then."""
    try:
        with open_store(settings, create=False) as store:
            return History(
                location=store.location,
                ci=_records(store, "ci", limit, "stage", since),
                bench=_records(store, "bench", limit, "bench.", since),
                coverage=_records(store, "coverage", limit, COVERAGE_SUITE, since),
                deployments=store.deployments(since=since),
            )
    except NoHistoryYet:
        return History()


def stage_series(history: History) -> dict[str, list[Point]]:
    """Each stage's duration over the recorded `invoke ci` runs."""
    series: dict[str, list[Point]] = defaultdict(list)
    for rec in history.ci:
        for m in rec.values:
            status = str(m.extra.get("status", ""))
            label = f"{rec.label()} {status}" + (" (cached)" if "cached_from" in m.extra else "")
            flag = status not in ("passed", "skipped", "")
            series[m.name].append(Point(rec.at, m.value, label, flag))
    return dict(series)


def ci_time_series(history: History) -> list[Point]:
    """Wall time of each recorded `invoke ci` run, in minutes."""
    points = []
    for rec in history.ci:
        took = rec.stored.run.duration_s
        if took is not None:
            status = rec.stored.run.status
            points.append(Point(rec.at, took / 60, f"{rec.label()} {status}", status != "passed"))
    return points


@dataclass(frozen=True)
class BenchTrend:
    """One benchmark's recorded values, in its own unit."""

    name: str
    unit: str
    points: list[Point]


def as_number(value: Any) -> float | None:
    """A JSON number as float; anything else None."""
    return float(value) if isinstance(value, (int, float)) else None


def bench_series(history: History) -> tuple[list[BenchTrend], list[str]]:
    """(trends, left out): the benchmarks of the latest run, by name, each with its
    series over the recorded runs (a point flagged when that run found a regression
    there); past BENCH_CHARTS the names left out, so the report can say so."""
    if not history.bench:
        return [], []
    latest = sorted({(m.name, m.unit) for m in history.bench[-1].values})
    drawn, rest = latest[:BENCH_CHARTS], [name for name, _ in latest[BENCH_CHARTS:]]
    series: dict[tuple[str, str], list[Point]] = {key: [] for key in drawn}
    for rec in history.bench:
        for m in rec.values:
            if (m.name, m.unit) in series:
                verdict = str(m.extra.get("verdict", ""))
                label = f"{rec.label()} {verdict}".strip()
                low, high = as_number(m.extra.get("low")), as_number(m.extra.get("high"))
                point = Point(rec.at, m.value, label, verdict == REGRESSION, low, high)
                series[(m.name, m.unit)].append(point)
    trends = [BenchTrend(name, unit, pts) for (name, unit), pts in series.items() if pts]
    return trends, rest


def coverage_series(history: History) -> list[Point]:
    """The total line coverage of each recorded coverage run, in percent."""
    points = []
    for rec in history.coverage:
        for m in rec.values:
            if m.suite == COVERAGE_SUITE and m.name == COVERAGE_NAME:
                points.append(Point(rec.at, m.value, rec.label()))
    return points
