"""The benchmark history page (`invoke bench.history`): one self-contained HTML file
(inline SVG, no script, no CDN) with a chart per benchmark, drawn by the pipeline's one
chart module (ci/reports/svg.py): each on its own axis, points placed by time, the
confidence interval of each run as a bar, regressions in red. A person opens it from
disk; hovering a point shows commit, time, value, change and verdict."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

from ci.bench.compare import fmt_axis, fmt_percent
from ci.history import Point as Recorded
from ci.reports import svg
from ci.reports.data import REGRESSION, BenchTrend, as_number


def _label(p: Recorded) -> str:
    parts = [p.commit[:12] or "no commit"]
    change = as_number(p.extra.get("change"))
    if change is not None:
        parts.append(f"{fmt_percent(change)} vs base")
    if p.extra.get("verdict"):
        parts.append(str(p.extra["verdict"]))
    return " · ".join(parts)


def trend(name: str, unit: str, recorded: Sequence[Recorded]) -> BenchTrend:
    """One benchmark's recorded series as chart points (tooltip: commit, change, verdict)."""
    points = [
        svg.Point(
            p.time,
            p.value,
            _label(p),
            p.extra.get("verdict") == REGRESSION,
            as_number(p.extra.get("low")),
            as_number(p.extra.get("high")),
        )
        for p in recorded
    ]
    return BenchTrend(name, unit, points)


def regressions(t: BenchTrend) -> int:
    """How many of its runs flagged the benchmark as a regression."""
    return sum(p.flag for p in t.points)


def page(trends: Sequence[BenchTrend], title: str, context: Mapping[str, str]) -> str:
    """The whole HTML document: a heading, what was selected, one chart per benchmark."""
    facts = " · ".join(f"{k}: {html.escape(v)}" for k, v in context.items())
    body = []
    for t in trends:
        flagged = regressions(t)
        note = f' <span class="bad">{flagged} regression(s)</span>' if flagged else ""
        chart = svg.trend("bench", t.name, t.points, fmt=fmt_axis(t.unit), width=760, height=230)
        body.append(f"<section><h2>{html.escape(t.name)}{note}</h2>\n{chart}\n</section>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>"
        "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
        "h2{font-size:1.05em;margin:1.6em 0 .3em}.bad{color:#d62728;font-size:.9em}"
        "p{color:#555}svg.chart{max-width:100%;height:auto;font-size:11px}"
        "svg .axis{fill:#475569}"
        "</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n<p>{facts}</p>\n"
        "<p>Each point is one recorded run, placed by its time (vertical bar: its confidence "
        "interval); red points are runs that flagged the benchmark as a regression. Each "
        "benchmark has its own scale.</p>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )
