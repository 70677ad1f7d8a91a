"""The specification's success metrics, from what was recorded: average CI time, PR merge
time, deployment frequency, mean time to recovery, change failure rate, test coverage and
benchmark regressions, each against its target (`[tool.pipeline.metrics]`).

Pure functions over the history (ci/reports/data.py) and the merge commits of git
history; a metric with nothing recorded says "no data yet" instead of a number.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ci.console import text_table
from ci.history import Deployment
from ci.reports.data import COVERAGE_NAME, COVERAGE_SUITE, REGRESSION, History
from ci.settings import Section

NO_DATA = "no data yet"
COMPARED = ("regression", "improvement", "within threshold", "within noise")


@dataclass(frozen=True)
class Metric:
    """One row of the metrics table."""

    name: str
    value: str
    target: str
    status: str  # met | missed | no data yet
    basis: str  # what the value was computed from


@dataclass(frozen=True)
class Merge:
    """A merge commit: when it was made and when its branch's last commit was."""

    sha: str
    merged_at: datetime
    tip_at: datetime

    @property
    def minutes(self) -> float:
        return max(0.0, (self.merged_at - self.tip_at).total_seconds() / 60)


def parse_merges(log: str) -> list[tuple[str, int, str]]:
    """(merge sha, commit time, merged tip sha) from
    `git log --merges --first-parent --format=%H %ct %P`."""
    found = []
    for line in log.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1].isdigit():
            found.append((parts[0], int(parts[1]), parts[3]))
    return found


def parse_times(log: str) -> dict[str, int]:
    """{sha: commit time} from `git log --no-walk=unsorted --format=%H %ct <shas>`."""
    times = {}
    for line in log.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            times[parts[0]] = int(parts[1])
    return times


def _minutes(value: float) -> str:
    if value >= 120:
        return f"{value / 60:.1f} h"
    return f"{value:.1f} min"


def _status(ok: bool) -> str:
    return "met" if ok else "missed"


def ci_time(history: History, target_min: float) -> Metric:
    """Mean wall time of full `invoke ci` runs (whole pipeline, not a subset)."""
    name, target = "average CI time", f"< {target_min:g} min"
    full = [
        r.stored.run.duration_s
        for r in history.ci
        if r.stored.run.meta.get("full") and r.stored.run.duration_s is not None
    ]
    if not full:
        return Metric(name, NO_DATA, target, NO_DATA, "no full `invoke ci` run recorded")
    mean = statistics.fmean(full) / 60
    return Metric(name, _minutes(mean), target, _status(mean < target_min), f"{len(full)} runs")


def merge_time(merges: Sequence[Merge], target_min: float) -> Metric:
    """Median time from a branch's last commit to its merge commit."""
    name, target = "PR merge time", f"< {target_min:g} min"
    if not merges:
        return Metric(name, NO_DATA, target, NO_DATA, "no merge commit in git history")
    median = statistics.median(m.minutes for m in merges)
    return Metric(
        name,
        _minutes(median),
        target,
        _status(median < target_min),
        f"median of {len(merges)} merges (last commit → merge)",
    )


def _changes(history: History, environment: str) -> list[Deployment]:
    """Deployments of a change to `environment` (rollbacks are recoveries, not changes;
    a deployment refused before it changed anything, e.g. unapproved, is no change)."""
    return [
        d
        for d in history.deployments
        if d.environment == environment and d.trigger != "rollback" and not d.details.get("refused")
    ]


def deploy_frequency(
    history: History, environment: str, per_week: float, window_days: int, now: datetime
) -> Metric:
    """Deployments per week over the window (or since the first one, when later)."""
    name, target = "deployment frequency", f"≥ {per_week:g} / week"
    deps = _changes(history, environment)
    if not deps:
        return Metric(name, NO_DATA, target, NO_DATA, f"no deployment to {environment}")
    first = min(d.started_at for d in deps)
    span = min(timedelta(days=window_days), max(timedelta(days=1), now - first))
    rate = len(deps) / (span.total_seconds() / (7 * 86400))
    basis = f"{len(deps)} to {environment} in {span.total_seconds() / 86400:.1f} days"
    return Metric(name, f"{rate:.1f} / week", target, _status(rate >= per_week), basis)


def recovery_time(history: History, environment: str, target_min: float) -> Metric:
    """Mean time from a failed deployment's end to service restored."""
    name, target = "mean time to recovery", f"< {target_min:g} min"
    failed = [d for d in _changes(history, environment) if d.failed]
    if not failed:
        if _changes(history, environment):
            return Metric(name, "n/a", target, "met", "no failed deployment")
        return Metric(name, NO_DATA, target, NO_DATA, f"no deployment to {environment}")
    times = [d.time_to_restore for d in failed if d.time_to_restore is not None]
    if not times:
        return Metric(name, NO_DATA, target, NO_DATA, f"{len(failed)} failed, none recovered")
    mean = statistics.fmean(t.total_seconds() for t in times) / 60
    basis = f"{len(times)} recoveries"
    return Metric(name, _minutes(mean), target, _status(mean < target_min), basis)


def failure_rate(history: History, environment: str, target_pct: float) -> Metric:
    """Share of finished deployments that failed or were rolled back."""
    name, target = "change failure rate", f"< {target_pct:g}%"
    done = [d for d in _changes(history, environment) if d.outcome != "in_progress"]
    if not done:
        return Metric(name, NO_DATA, target, NO_DATA, f"no finished deployment to {environment}")
    pct = 100 * sum(d.failed for d in done) / len(done)
    basis = f"{sum(d.failed for d in done)} of {len(done)} deployments"
    return Metric(name, f"{pct:.1f}%", target, _status(pct < target_pct), basis)


def coverage(history: History, target_pct: float) -> Metric:
    """The latest recorded total line coverage."""
    name, target = "test coverage", f"> {target_pct:g}%"
    for rec in reversed(history.coverage):
        for m in rec.values:
            if m.suite == COVERAGE_SUITE and m.name == COVERAGE_NAME:
                basis = f"latest run ({rec.label()})"
                return Metric(name, f"{m.value:.1f}%", target, _status(m.value > target_pct), basis)
    return Metric(name, NO_DATA, target, NO_DATA, "no coverage run recorded")


def bench_regressions(history: History, target_pct: float) -> Metric:
    """Share of benchmark runs that compared against a base and found a regression."""
    name, target = "benchmark regressions", f"< {target_pct:g}%"
    compared = [
        rec
        for rec in history.bench
        if any(str(m.extra.get("verdict", "")) in COMPARED for m in rec.values)
    ]
    if not compared:
        return Metric(name, NO_DATA, target, NO_DATA, "no benchmark run compared with a base")
    bad = sum(any(m.extra.get("verdict") == REGRESSION for m in r.values) for r in compared)
    pct = 100 * bad / len(compared)
    basis = f"{bad} of {len(compared)} compared runs"
    return Metric(name, f"{pct:.1f}%", target, _status(pct < target_pct), basis)


def compute(history: History, merges: Sequence[Merge], cfg: Section, now: datetime) -> list[Metric]:
    """Every metric, in the specification's order."""
    env = cfg.text("environment")
    window = cfg.whole("window_days", minimum=1)
    return [
        ci_time(history, cfg.number("ci_time_min", minimum=0)),
        merge_time(merges, cfg.number("merge_time_min", minimum=0)),
        deploy_frequency(history, env, cfg.number("deploys_per_week", minimum=0), window, now),
        recovery_time(history, env, cfg.number("mttr_min", minimum=0)),
        failure_rate(history, env, cfg.number("change_failure_pct", minimum=0)),
        coverage(history, cfg.number("coverage_pct", minimum=0)),
        bench_regressions(history, cfg.number("bench_regression_pct", minimum=0)),
    ]


HEADER = ("metric", "value", "target", "status", "basis")


def table(metrics: Sequence[Metric]) -> str:
    """A fixed-width table for the terminal."""
    return text_table(HEADER, [(m.name, m.value, m.target, m.status, m.basis) for m in metrics])
