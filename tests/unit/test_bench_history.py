"""Bench runs in the history store and the trend chart drawn from them: several recorded
runs, regressions marked, dirty runs and other modes left out, a self-contained file."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from ci import settings
from ci.bench.compare import Report, row
from ci.bench.record import record, suite
from ci.bench.stats import Change, Estimate
from ci.bench.tasks import history_chart
from ci.errors import HistoryError
from ci.history import GitState, current_context, open_store, utc_now


def cfg(tmp_path: Path) -> settings.Settings:
    return settings.load(
        tmp_path,
        {
            "CIPIPE_HISTORY__PATH": str(tmp_path / "h.sqlite3"),
            "CIPIPE_OUTPUT_DIR": str(tmp_path / "out"),
        },
    )


def store_run(s, i: int, value: float, *, change: float | None, mode="wall", dirty=False) -> None:
    git = GitState(f"{i:040x}", "main", dirty)
    info = current_context(
        s, "bench", meta={"mode": mode}, git=git, now=utc_now() + timedelta(minutes=i)
    )
    unit = "ns" if mode == "wall" else "instructions"
    e = Estimate(value, value * 0.97, value * 1.03)
    ch = None if change is None else Change(change, change - 0.01, change + 0.01, True)
    base = None if change is None else Estimate(value / (1 + change), 0, 0)
    rows = [
        row("book/insert", unit, base, e, ch, 0.10, compared=change is not None),
        row("risk/check", unit, None, Estimate(50.0, 49.0, 51.0), None, 0.10, compared=False),
    ]
    rep = Report(mode, 0.10, "warn", 0.95, rows, base_commit=None if change is None else "f" * 40)
    record(s, info.finished("passed"), rep)


def test_each_run_is_recorded_by_commit_branch_machine_and_mode(tmp_path: Path) -> None:
    s = cfg(tmp_path)
    store_run(s, 1, 1000, change=None)
    with open_store(s) as store:
        [run] = store.runs("bench")
        assert run.run.meta == {"mode": "wall"}
        assert run.run.branch == "main" and run.run.commit == f"{1:040x}"
        values = {m.name: m for m in store.measurements(run.id, suite("wall"))}
    assert values["book/insert"].value == 1000 and values["book/insert"].unit == "ns"
    assert values["book/insert"].extra["verdict"] == "measured"


def test_trend_chart_shows_several_runs_and_marks_regressions(tmp_path: Path) -> None:
    s = cfg(tmp_path)
    for i, (value, change) in enumerate([(1000, None), (1010, 0.01), (1160, 0.15), (1150, None)]):
        store_run(s, i, value, change=change)
    store_run(s, 9, 5000, change=0.5, dirty=True)  # uncommitted: never in a trend
    store_run(s, 10, 9999, change=None, mode="instructions")
    line = history_chart(s)
    out = tmp_path / "out" / "bench" / "history.html"
    assert line.startswith(f"wrote {out}: 2 benchmark(s), up to 4 runs each, 1 regression(s)")
    page = out.read_text()
    insert = page[page.index("<h2>book/insert") : page.index("<h2>risk/check")]
    assert insert.count('<circle class="point"') == 3
    assert insert.count('<circle class="point flagged"') == 1
    assert insert.count('class="interval"') == 4  # each run's confidence interval
    assert "+15.0% vs base · regression" in insert
    assert ">5 µs<" not in page and "+50.0%" not in page  # the dirty run is left out
    # self-contained: no script, no stylesheet or image from anywhere
    assert "<script" not in page
    assert not re.search(r"(src|href)=", page)
    assert re.findall(r"https?://[^\"]+", page) == ["http://www.w3.org/2000/svg"] * 2


def test_nothing_recorded_is_one_clear_error(tmp_path: Path) -> None:
    s = cfg(tmp_path)
    with pytest.raises(HistoryError, match="no history recorded yet"):
        history_chart(s)
    store_run(s, 1, 1000, change=None, mode="instructions")
    with pytest.raises(HistoryError, match="no wall benchmark runs of committed code"):
        history_chart(s, mode="wall")
    assert ": 2 benchmark(s), up to 1 runs each" in history_chart(s, mode="instructions")
