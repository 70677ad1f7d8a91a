"""Coverage figures in the history store: each run's total and per-file percentages,
keyed by commit and branch, and the baseline a run is compared with (the nearest
recorded commit on the base's line of history)."""

from __future__ import annotations

from collections.abc import Sequence

from ci.coverage.cobertura import CoverageReport
from ci.coverage.gates import BaselineFigures
from ci.history import HistoryStore, Measurement, RunInfo

KIND = "coverage"
SUITE_TOTAL = "coverage"  # one measurement, "total"
SUITE_FILES = "coverage.file"  # one per file, named by its workspace-relative path


def measurements(report: CoverageReport) -> list[Measurement]:
    """The figures of a run: the total and every file, in percent, with the line counts."""
    values = [
        Measurement(
            SUITE_TOTAL,
            "total",
            report.percent,
            "%",
            {"covered": report.covered, "coverable": report.coverable},
        )
    ]
    values += [
        Measurement(
            SUITE_FILES, f.path, f.percent, "%", {"covered": f.covered, "coverable": f.coverable}
        )
        for f in report.files.values()
    ]
    return values


def record(store: HistoryStore, run: RunInfo, report: CoverageReport) -> str:
    """Store a finished run's figures; returns the run's store id."""
    return store.record(run, measurements(report))


def find(store: HistoryStore, candidates: Sequence[str], how: str) -> BaselineFigures | None:
    """The figures of the first commit of `candidates` (nearest first) that has a clean
    recorded coverage run; `how` says how the candidates were chosen."""
    for distance, commit in enumerate(candidates):
        found = store.baseline(KIND, SUITE_TOTAL, commit)
        if found is None:
            continue
        total = found.get("total")
        if total is None:
            continue
        files = {m.name: m.value for m in store.measurements(found.run.id, SUITE_FILES)}
        where = how if distance == 0 else f"{how}, {distance} commits back"
        return BaselineFigures(commit, where, total.value, files)
    return None
