"""The HTML report: one self-contained file (inline CSS and SVG, no script, no CDN) that
opens from disk. Rendered from the stage result files, plus the history store for the
trends: stage durations against budgets, CI time and per-stage times over recorded runs,
benchmark trends, coverage trend, deployment history, and the success metrics."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from ci import report
from ci.bench.compare import fmt_axis
from ci.reports import svg
from ci.reports.data import (
    BenchTrend,
    History,
    bench_series,
    ci_time_series,
    coverage_series,
    stage_series,
)
from ci.reports.metrics import NO_DATA, Metric
from ci.result import StageResult

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#0f172a;
background:#f8fafc}
main{max-width:860px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.meta{color:#64748b;font-size:12px}
.verdict{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600}
.passed{background:#16a34a} .failed{background:#dc2626}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{border-bottom:1px solid #e2e8f0;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f1f5f9}
td.s-passed,td.s-met{color:#15803d;font-weight:600}
td.s-skipped{color:#0e7490;font-weight:600}
td.s-failed,td.s-error,td.s-internal-error,td.s-timeout,td.s-missed{color:#b91c1c;font-weight:600}
td.s-blocked,td.s-cancelled{color:#a16207;font-weight:600}
.card{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:12px;margin:8px 0}
.nodata{color:#64748b;font-style:italic}
svg.chart{max-width:100%;height:auto;font-size:11px}
.multiples{display:flex;flex-wrap:wrap;gap:8px 12px}
svg .axis,svg .legend{fill:#475569} svg .label{fill:#0f172a} svg .value{fill:#334155}
"""


def _table(header: Sequence[str], rows: Sequence[Sequence[tuple[str, str]]]) -> str:
    """An HTML table; each cell is (text, css class)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{escape(cls)}">{escape(text)}</td>' for text, cls in row)
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _card(title: str, chart: str | None, empty: str) -> str:
    inner = chart if chart else f'<p class="nodata">{escape(NO_DATA)}: {escape(empty)}</p>'
    return f'<h2>{escape(title)}</h2><div class="card">{inner}</div>'


def _gates(results: Sequence[StageResult]) -> str:
    rows = []
    for r in results:
        errors = sum(f.severity == "error" for f in r.findings)
        over = r.earned_s > r.budget_s
        rows.append(
            [
                (r.stage + ("" if r.blocking else " (advisory)"), ""),
                (r.status.value + (" (cached)" if r.cached else ""), f"s-{r.status.value}"),
                (report.duration(r), "s-missed" if over else ""),
                (str(errors), ""),
                ((report.summary(r).strip().splitlines() or [""])[0][:160], ""),
            ]
        )
    return _table(("stage", "status", "time / budget", "findings", "summary"), rows)


def _findings(results: Sequence[StageResult]) -> str:
    items = [
        f"<li><b>{escape(r.stage)}</b> {escape(f.one_line())}</li>"
        for r in results
        for f in r.findings
        if f.severity == "error"
    ][:100]
    if not items:
        return ""
    return f'<h2>Findings</h2><div class="card"><ul>{"".join(items)}</ul></div>'


def _deployments(history: History) -> str | None:
    if not history.deployments:
        return None
    marks = [
        svg.Mark(d.started_at, d.environment, d.outcome, d.version) for d in history.deployments
    ]
    recent = history.deployments[-10:]
    rows = [
        [
            (f"{d.started_at:%Y-%m-%d %H:%M}", ""),
            (d.environment, ""),
            (d.version, ""),
            (d.outcome, "s-passed" if d.outcome == "succeeded" else "s-failed"),
            (d.trigger, ""),
        ]
        for d in reversed(recent)
    ]
    table = _table(("started (UTC)", "environment", "version", "outcome", "trigger"), rows)
    return svg.timeline(marks) + table


def _bench(trends: Sequence[BenchTrend], rest: Sequence[str]) -> str | None:
    """One small chart per benchmark, each on its own axis: a 4 ns and a 10 µs benchmark
    are both readable, where one shared linear axis flattens the fast one to the floor."""
    if not trends:
        return None
    charts = [svg.trend("bench", t.name, t.points, fmt=fmt_axis(t.unit)) for t in trends]
    note = (
        "<p class='meta'>each benchmark on its own scale; red: a run that found a regression"
        + (f"; not drawn: {escape(', '.join(rest))}" if rest else "")
        + "</p>"
    )
    return f"{note}<div class='multiples'>{''.join(charts)}</div>"


def render(
    results: Sequence[StageResult],
    history: History,
    metrics: Sequence[Metric],
    *,
    generated_at: datetime,
    coverage_target: float,
    title: str = "Pipeline report",
) -> str:
    """The whole page."""
    ok = all(r.status.ok or not r.blocking for r in results)
    verdict = "passed" if ok else "failed"
    bars = [
        svg.Bar(r.stage, r.earned_s, r.budget_s, r.status.value, bool(r.cached)) for r in results
    ]
    ci_points = ci_time_series(history)
    stages = stage_series(history)
    bench, bench_rest = bench_series(history)
    cov = coverage_series(history)
    where = history.location or "no history recorded yet"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(title)}: {verdict}</title>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<style>{CSS}</style></head><body><main>",
        f"<h1>{escape(title)} <span class='verdict {verdict}'>{verdict}</span></h1>",
        f"<p class='meta'>generated {generated_at:%Y-%m-%d %H:%M:%S} UTC from the stage "
        f"result files; trends from {escape(where)}</p>",
        "<h2>Gates</h2>",
        _gates(results),
        _card("Stage durations against budgets", svg.durations(bars), "no stage result"),
        _card(
            "CI time per recorded run",
            svg.lines("ci-time", {"invoke ci": ci_points}, unit="min", title="CI wall time")
            if ci_points
            else None,
            "no `invoke ci` run recorded",
        ),
        _card(
            "Stage durations over recorded runs",
            svg.lines("stage-trend", stages, unit="s", title="Stage durations") if stages else None,
            "no `invoke ci` run recorded",
        ),
        _card(
            "Benchmark trends",
            _bench(bench, bench_rest),
            "no benchmark run recorded (`nox -s bench`)",
        ),
        _card(
            "Coverage trend",
            svg.lines(
                "coverage",
                {"line coverage": cov},
                unit="%",
                title="Total line coverage",
                target=coverage_target,
                target_label="gate",
                floor_zero=False,
            )
            if cov
            else None,
            "no coverage run recorded (`nox -s coverage`)",
        ),
        _card("Deployment history", _deployments(history), "no deployment recorded"),
        "<h2>Success metrics</h2>",
        _table(
            ("metric", "value", "target", "status", "basis"),
            [
                [
                    (m.name, ""),
                    (m.value, ""),
                    (m.target, ""),
                    (m.status, "s-" + m.status if m.status != NO_DATA else ""),
                    (m.basis, ""),
                ]
                for m in metrics
            ],
        ),
        _findings(results),
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"
