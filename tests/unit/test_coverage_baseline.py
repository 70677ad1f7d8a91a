"""Coverage figures in a real (SQLite) history store: recorded per commit and branch,
found as the baseline on the base's line of history, never from a dirty run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from ci import settings
from ci.coverage.baseline import SUITE_FILES, SUITE_TOTAL, find, measurements, record
from ci.coverage.cobertura import CoverageReport, FileCoverage
from ci.history import Machine, RunInfo, open_store

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SHA = {name: name * 40 for name in "abcdef"}


def report(covered: int, missed: int) -> CoverageReport:
    """`covered` of `covered + missed` lines: src/b.rs holds one covered line and the misses."""
    a = {i: 1 for i in range(1, covered)}
    b = {1: 1, **{100 + i: 0 for i in range(missed)}}
    files = {"src/a.rs": FileCoverage("src/a.rs", a), "src/b.rs": FileCoverage("src/b.rs", b)}
    return CoverageReport(files)


def info(commit: str, *, dirty: bool = False, minutes: int = 0) -> RunInfo:
    return RunInfo(
        kind="coverage",
        commit=commit,
        branch="main",
        run_id="r",
        machine=Machine("m", "m"),
        started_at=T0 + timedelta(minutes=minutes),
        dirty=dirty,
    ).finished("passed")


def test_measurements_hold_the_total_and_every_file() -> None:
    values = {(m.suite, m.name): m for m in measurements(report(3, 1))}
    assert values[(SUITE_TOTAL, "total")].value == 75.0
    assert values[(SUITE_TOTAL, "total")].extra == {"covered": 3, "coverable": 4}
    assert values[(SUITE_FILES, "src/b.rs")].value == 50.0
    assert len(values) == 3


def test_the_nearest_recorded_clean_commit_is_the_baseline(tmp_path: Path) -> None:
    cfg = settings.load(tmp_path, {"CIPIPE_HISTORY__PATH": str(tmp_path / "h.sqlite3")})
    with open_store(cfg) as store:
        record(store, info(SHA["c"]), report(9, 1))
        record(store, info(SHA["b"], dirty=True, minutes=1), report(1, 9))  # never a baseline
        record(store, info(SHA["a"], minutes=2), report(6, 4))
        # history of the base, nearest first: b (dirty only), c (clean), a
        found = find(store, [SHA["d"], SHA["b"], SHA["c"], SHA["a"]], "merge base with main")
        assert found is not None
        assert found.commit == SHA["c"]
        assert found.total == 90.0
        assert found.how == "merge base with main, 2 commits back"
        assert found.files == {"src/a.rs": 100.0, "src/b.rs": 50.0}
        exact = find(store, [SHA["a"]], "HEAD's history")
        assert exact is not None and exact.how == "HEAD's history" and exact.total == 60.0
        assert find(store, [SHA["e"], SHA["f"]], "x") is None
        assert find(store, [], "x") is None


def test_the_latest_run_of_a_commit_wins(tmp_path: Path) -> None:
    cfg = settings.load(tmp_path, {"CIPIPE_HISTORY__PATH": str(tmp_path / "h.sqlite3")})
    with open_store(cfg) as store:
        record(store, info(SHA["a"]), report(5, 5))
        record(store, info(SHA["a"], minutes=5), report(9, 1))
        found = find(store, [SHA["a"]], "HEAD's history")
    assert found is not None and found.total == 90.0
