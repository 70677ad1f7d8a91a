"""Reports from result files and a history store built in the test: the charts, the
success metrics against their targets ("no data yet" where nothing is recorded), and bad
input (nothing to report, corrupt result or history) as one line with nothing written."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ci import settings as settings_mod
from ci.errors import HistoryError
from ci.history import Machine, Measurement, RunInfo, open_store
from ci.reports import data, html, metrics, svg
from ci.reports.errors import ReportError
from ci.reports.tasks import critical_path_s, run_report
from ci.result import StageResult, Status, write_result

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def _settings(tmp_path: Path, **env: str) -> settings_mod.Settings:
    base = {
        "CIPIPE_HISTORY__PATH": str(tmp_path / "history.sqlite3"),
        "CIPIPE_OUTPUT_DIR": str(tmp_path / "out"),
    }
    return settings_mod.load(ROOT, {**base, **env})


def _run(kind: str, at: datetime, took_s: float, status: str = "passed", **meta) -> RunInfo:
    return RunInfo(
        kind,
        "a" * 40,
        "main",
        "r",
        Machine("m", "m"),
        at,
        at + timedelta(seconds=took_s),
        status,
        meta=meta,
    )


def verdict_of(run: int) -> str:
    return "measured" if run == 0 else "within noise"


def _history(cfg: settings_mod.Settings) -> None:
    with open_store(cfg) as store:
        for i in range(4):
            at = NOW - timedelta(days=4 - i)
            stages = [
                Measurement("stage", "lint", 40 + i, "s", {"status": "passed", "budget": 60}),
                Measurement(
                    "stage", "unit", 100 - i, "s", {"status": "failed" if i == 1 else "passed"}
                ),
            ]
            store.record(_run("ci", at, 600 + 60 * i, full=True), stages)
        store.record(_run("ci", NOW, 3000, full=False), [])  # a subset: not CI time
        for i, verdict in enumerate(["measured", "within noise", "regression", "within noise"]):
            at = NOW - timedelta(days=3 - i, hours=1)
            store.record(
                _run("bench", at, 60, mode="wall"),
                [
                    Measurement("bench.wall", "book/insert", 50 + i, "ns", {"verdict": verdict}),
                    Measurement("bench.wall", "risk/check", 20, "ns", {"verdict": verdict_of(i)}),
                ],
            )
        for i, pct in enumerate([78.0, 81.5, 83.25]):
            store.record(
                _run("coverage", NOW - timedelta(days=3 - i, hours=2), 90),
                [Measurement("coverage", "total", pct, "%")],
            )
        for i in range(6):
            start = NOW - timedelta(days=6 - i)
            dep = store.start_deployment(
                "production", f"v1.{i}", "sha256:x", trigger="manual", at=start
            )
            outcome = "rolled_back" if i == 2 else "succeeded"
            store.finish_deployment(dep, outcome, at=start + timedelta(minutes=5))
            if outcome == "rolled_back":
                store.mark_recovered(dep, start + timedelta(minutes=17))
        store.start_deployment("staging", "v1.9", "sha256:y", trigger="push", at=NOW)


def test_metrics_from_recorded_runs_against_targets(tmp_path: Path) -> None:
    cfg = _settings(tmp_path)
    _history(cfg)
    hist = data.read(cfg, limit=1000)
    merges = [metrics.Merge("m1", NOW, NOW - timedelta(minutes=m)) for m in (10, 20, 90)]
    found = {m.name: m for m in metrics.compute(hist, merges, cfg.section("metrics"), NOW)}
    assert found["average CI time"].value == "11.5 min"  # the subset run does not count
    assert found["average CI time"].status == "met" and found["average CI time"].basis == "4 runs"
    assert (found["PR merge time"].value, found["PR merge time"].status) == ("20.0 min", "met")
    freq = found["deployment frequency"]
    assert freq.value == "7.0 / week" and freq.status == "met"  # 6 in 6 days; staging excluded
    assert found["mean time to recovery"].value == "12.0 min"
    assert (found["change failure rate"].value, found["change failure rate"].status) == (
        "16.7%",
        "missed",
    )
    assert (found["test coverage"].value, found["test coverage"].status) == ("83.2%", "met")
    bench = found["benchmark regressions"]
    assert (bench.value, bench.basis, bench.status) == ("33.3%", "1 of 3 compared runs", "missed")
    text = metrics.table(list(found.values()))
    assert text.splitlines()[0].split() == ["metric", "value", "target", "status", "basis"]


def test_metrics_say_no_data_yet_when_nothing_is_recorded(tmp_path: Path) -> None:
    cfg = _settings(tmp_path)
    found = metrics.compute(data.read(cfg, limit=10), [], cfg.section("metrics"), NOW)
    assert [m.value for m in found] == [metrics.NO_DATA] * 7
    assert all(m.status == metrics.NO_DATA for m in found)
    assert not (tmp_path / "history.sqlite3").exists()  # reading never creates a store


def test_merge_log_parsing() -> None:
    log = "m1 1700000600 p1 t1\nm2 1700001000 p2 t2 t3\ngarbage\n"
    assert metrics.parse_merges(log) == [("m1", 1700000600, "t1"), ("m2", 1700001000, "t2")]
    assert metrics.parse_times("t1 1700000000\nt2 1700000900\n") == {
        "t1": 1700000000,
        "t2": 1700000900,
    }


def test_html_has_every_chart_with_the_right_marks(tmp_path: Path) -> None:
    cfg = _settings(tmp_path)
    _history(cfg)
    hist = data.read(cfg, limit=30)
    results = [
        StageResult("lint", Status.PASSED, 42.0, 60),
        StageResult("unit", Status.FAILED, 130.0, 120, "tests: 1 failed"),
        StageResult("integration", Status.BLOCKED, 0.0, 300, "not run: needs unit failed"),
    ]
    page = html.render(results, hist, [], generated_at=NOW, coverage_target=80)
    charts = re.findall(r'data-chart="([\w-]+)"', page)
    assert charts == [
        "durations",
        "ci-time",
        "stage-trend",
        "bench",  # book/insert
        "bench",  # risk/check: one small chart per benchmark
        "coverage",
        "deployments",
    ]
    assert page.count('class="bar"') == 3 and page.count('class="budget"') == 3
    assert 'stroke="#dc2626" stroke-width="2"' in page  # unit over its budget
    stage_points = len(POINT.findall(_section(page, "stage-trend")))
    assert stage_points == 8  # 2 stages x 4 runs
    assert len(POINT.findall(_section(page, "ci-time"))) == 5
    insert, risk = _section(page, "bench"), _section(page, "bench", 1)
    assert 'data-series="book/insert"' in insert and 'data-series="risk/check"' in risk
    assert len(POINT.findall(insert)) == len(POINT.findall(risk)) == 4
    assert insert.count('class="point flagged"') == 1 and "flagged" not in risk  # regression
    assert len(POINT.findall(_section(page, "coverage"))) == 3
    assert 'class="target"' in _section(page, "coverage")
    assert _section(page, "deployments").count('class="deploy"') == 7
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")


def test_html_without_history_says_no_data_yet(tmp_path: Path) -> None:
    page = html.render(
        [StageResult("lint", Status.PASSED, 1, 60)],
        data.History(),
        [],
        generated_at=NOW,
        coverage_target=80,
    )
    assert re.findall(r'data-chart="([\w-]+)"', page) == ["durations"]
    assert page.count("no data yet:") == 5


POINT = re.compile(r'class="point(?: flagged)?"')
CY = re.compile(r'<circle class="point(?: flagged)?" cx="([\d.]+)" cy="([\d.]+)"')


def _section(page: str, chart: str, nth: int = 0) -> str:
    start = -1
    for _ in range(nth + 1):
        start = page.index(f'data-chart="{chart}"', start + 1)
    return page[start : page.index("</svg>", start)]


def test_benchmarks_four_orders_of_magnitude_apart_are_each_readable(tmp_path: Path) -> None:
    """A 4 ns and a 10 µs benchmark: each on its own axis, each moving visibly with its
    own ~10% changes, where one shared linear axis drew the fast one as a flat line."""
    cfg = _settings(tmp_path)
    with open_store(cfg) as store:
        for i, (fast, slow) in enumerate(
            [(4.0, 10_000), (4.4, 10_900), (3.9, 9_800), (4.6, 11_000)]
        ):
            verdict = "regression" if i == 3 else "within noise"
            store.record(
                _run("bench", NOW - timedelta(days=4 - i), 60, mode="wall"),
                [
                    Measurement("bench.wall", "tick/parse", fast, "ns", {"verdict": verdict}),
                    Measurement("bench.wall", "book/rebuild", slow, "ns", {"verdict": "ok"}),
                ],
            )
    page = html.render([], data.read(cfg, limit=30), [], generated_at=NOW, coverage_target=80)
    spreads = {}
    for nth in range(2):
        chart = _section(page, "bench", nth)
        name = re.search(r'data-series="([^"]+)"', chart)
        ys = [float(y) for _, y in CY.findall(chart)]
        assert name and len(ys) == 4
        spreads[name.group(1)] = max(ys) - min(ys)
    # both lines span most of their plot (116 px high), neither lies on the floor
    assert spreads["tick/parse"] > 60 and spreads["book/rebuild"] > 60, spreads
    fast_chart = _section(page, "bench", [*spreads].index("tick/parse"))
    assert fast_chart.count('class="point flagged"') == 1  # its regression, in its chart
    assert ">4.6 ns<" in fast_chart or "latest 4.6 ns" in fast_chart


def test_points_are_placed_by_time_not_by_run() -> None:
    day = timedelta(days=1)
    pts = [svg.Point(NOW, 1), svg.Point(NOW + day, 2), svg.Point(NOW + 10 * day, 3)]
    for chart in (
        svg.lines("x", {"s": pts}, unit="s", title="t"),
        svg.trend("x", "s", pts, fmt=str),
    ):
        xs = [float(x) for x, _ in CY.findall(chart)]
        assert len(xs) == 3
        assert (xs[2] - xs[1]) == pytest.approx(9 * (xs[1] - xs[0]), rel=0.01)


def test_svg_escapes_labels() -> None:
    text = svg.durations([svg.Bar("<b>&", 1, 2, "passed")])
    assert "<b>&" not in text and "&lt;b&gt;&amp;" in text


def test_critical_path_follows_the_graph() -> None:
    results = [
        StageResult("lint", Status.PASSED, 10, 60),
        StageResult("security", Status.PASSED, 50, 120),
        StageResult("unit", Status.PASSED, 20, 120),
        StageResult("integration", Status.PASSED, 30, 300),
    ]
    assert critical_path_s(results) == 60  # lint -> unit -> integration; security beside


def test_report_before_any_stage_ran_is_one_line(tmp_path: Path) -> None:
    env = {"CIPIPE_OUTPUT_DIR": str(tmp_path / "out")}
    with pytest.raises(ReportError, match=r"^no results in .*: run `invoke ci`"):
        run_report(ROOT, env=env, say=lambda _: None)
    (tmp_path / "out").mkdir()
    with pytest.raises(ReportError, match="no results in"):
        run_report(ROOT, env=env, say=lambda _: None)
    assert list((tmp_path / "out").iterdir()) == []


def test_corrupt_result_file_is_one_line_and_nothing_is_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_result(out, StageResult("lint", Status.PASSED, 1, 60))
    (out / "unit.json").write_text('{"stage": "unit", "status": "exploded"')
    (out / "summary.md").write_text("previous summary\n")
    env = {"CIPIPE_OUTPUT_DIR": str(out), "CIPIPE_HISTORY__PATH": str(tmp_path / "h.sqlite3")}
    with pytest.raises(ReportError, match=r"unit.json is not a stage result \(JSONDecodeError"):
        run_report(ROOT, html=True, env=env, say=lambda _: None)
    assert (out / "summary.md").read_text() == "previous summary\n"
    assert not (out / "report.html").exists()


def test_corrupt_history_store_is_one_line_and_nothing_is_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_result(out, StageResult("lint", Status.PASSED, 1, 60))
    store = tmp_path / "h.sqlite3"
    store.write_bytes(b"this is not a database at all")
    (out / "summary.md").write_text("previous summary\n")
    env = {"CIPIPE_OUTPUT_DIR": str(out), "CIPIPE_HISTORY__PATH": str(store)}
    with pytest.raises(HistoryError, match="is not an SQLite database"):
        run_report(ROOT, html=True, env=env, say=lambda _: None)
    assert store.read_bytes() == b"this is not a database at all"
    assert (out / "summary.md").read_text() == "previous summary\n"
    assert not (out / "report.html").exists()


CACHED = {"run_id": "r7", "at": "2026-11-19T10:00:00Z", "commit": "abc", "duration_s": "42.500"}


def test_a_replayed_stage_shows_as_cached_with_the_time_of_the_run_it_came_from() -> None:
    from ci import report

    results = [
        StageResult("lint", Status.PASSED, 0.004, 60, "fmt ok", cached=dict(CACHED)),
        StageResult("unit", Status.PASSED, 12.0, 120, "tests: 3 passed"),
    ]
    page = html.render(results, data.History(), [], generated_at=NOW, coverage_target=80)
    gates = page[page.index("<h2>Gates</h2>") : page.index('data-chart="durations"')]
    lint_row = gates[gates.index("<td") : gates.index("</tr>", gates.index("<td"))]
    assert "passed (cached)" in lint_row and "42.5s" in lint_row and "0.0s" not in lint_row
    assert "2026-11-19T10:00:00Z" in lint_row
    chart = _section(page, "durations")
    assert 'class="bar cached" data-value="42.5"' in chart  # drawn at its real length
    assert "42.5 s (cached)" in chart and chart.count('class="bar"') == 1
    for text in (report.markdown(results), report.table(results)):
        line = next(x for x in text.splitlines() if x.lstrip("| ").startswith("lint"))
        assert "cached" in line and "42.5s" in line and "0.0s" not in line, line
    from ci import ci_runs

    lint = ci_runs.measurements(results)[0]
    assert lint.extra["cached_from"] == "r7" and lint.extra["ran_s"] == 42.5


def test_a_rebuilt_report_keeps_the_cache_audit_row(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_result(out, StageResult("lint", Status.PASSED, 1, 60))
    audit = StageResult("cache-audit", Status.FAILED, 3, 60, "audited 1 of 1: 1 disagreed")
    write_result(out, audit)
    env = {"CIPIPE_OUTPUT_DIR": str(out), "CIPIPE_HISTORY__PATH": str(tmp_path / "h.db")}
    run_report(ROOT, env=env, say=lambda _: None, step_summary=False)
    summary = (out / "summary.md").read_text()
    assert summary.startswith("## Pipeline: failed") and "| cache-audit | FAIL |" in summary
