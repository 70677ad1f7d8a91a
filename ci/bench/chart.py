"""Trend charts of recorded benchmark runs: one self-contained HTML file (inline SVG,
no script, no CDN) with a chart per benchmark, its regressions marked in red. A person
opens it from disk; hovering a point shows commit, time, value and verdict."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ci.bench.compare import fmt_percent, fmt_value
from ci.history import Point

WIDTH, HEIGHT = 760, 230
LEFT, RIGHT, TOP, BOTTOM = 90, 20, 20, 40
REGRESSION = "regression"


@dataclass(frozen=True)
class Chart:
    """One benchmark's series."""

    name: str
    unit: str
    points: Sequence[Point]

    @property
    def regressions(self) -> list[Point]:
        """Points whose run flagged this benchmark as a regression."""
        return [p for p in self.points if p.extra.get("verdict") == REGRESSION]


def _bounds(points: Sequence[Point]) -> tuple[float, float]:
    lows = [float(p.extra.get("low", p.value)) for p in points]
    highs = [float(p.extra.get("high", p.value)) for p in points]
    lo = min([p.value for p in points] + lows)
    hi = max([p.value for p in points] + highs)
    if hi <= lo:
        pad = abs(lo) * 0.05 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.08
    return max(0.0, lo - pad), hi + pad


def _tooltip(p: Point, unit: str) -> str:
    parts = [
        f"{p.commit[:12] or 'no commit'}",
        p.time.strftime("%Y-%m-%d %H:%M UTC"),
        fmt_value(p.value, unit),
    ]
    change = p.extra.get("change")
    if isinstance(change, (int, float)):
        parts.append(f"{fmt_percent(float(change))} vs base")
    if p.extra.get("verdict"):
        parts.append(str(p.extra["verdict"]))
    return " · ".join(parts)


def svg(chart: Chart) -> str:
    """The chart of one benchmark as an inline <svg> element."""
    pts = chart.points
    lo, hi = _bounds(pts)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w * (i / (len(pts) - 1)) if len(pts) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - (v - lo) / (hi - lo))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{html.escape(chart.name)}">',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
        'stroke="#ccc"/>',
    ]
    for k in range(3):
        v = lo + (hi - lo) * k / 2
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            'stroke="#e4e4e4"/>'
            f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="11">'
            f"{html.escape(fmt_value(v, chart.unit))}</text>"
        )
    for i, p in enumerate(pts):
        low, high = p.extra.get("low"), p.extra.get("high")
        if isinstance(low, (int, float)) and isinstance(high, (int, float)) and high > low:
            out.append(
                f'<line x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{y(float(low)):.1f}" '
                f'y2="{y(float(high)):.1f}" stroke="#9ab" stroke-width="2"/>'
            )
    line = " ".join(f"{x(i):.1f},{y(p.value):.1f}" for i, p in enumerate(pts))
    out.append(f'<polyline points="{line}" fill="none" stroke="#2a6fb0" stroke-width="1.5"/>')
    for i, p in enumerate(pts):
        bad = p.extra.get("verdict") == REGRESSION
        colour, radius = ("#d62728", 6) if bad else ("#2a6fb0", 3.5)
        cls = "regression" if bad else "point"
        out.append(
            f'<circle class="{cls}" cx="{x(i):.1f}" cy="{y(p.value):.1f}" r="{radius}" '
            f'fill="{colour}"><title>{html.escape(_tooltip(p, chart.unit))}</title></circle>'
        )
    first, last = pts[0].time, pts[-1].time
    out.append(
        f'<text x="{LEFT}" y="{HEIGHT - 12}" font-size="11">'
        f"{first.strftime('%Y-%m-%d %H:%M')}</text>"
        f'<text x="{LEFT + plot_w}" y="{HEIGHT - 12}" font-size="11" text-anchor="end">'
        f"{last.strftime('%Y-%m-%d %H:%M')} ({len(pts)} runs)</text>"
    )
    out.append("</svg>")
    return "\n".join(out)


def page(charts: Sequence[Chart], title: str, context: Mapping[str, str]) -> str:
    """The whole HTML document: a heading, what was selected, one chart per benchmark."""
    facts = " · ".join(f"{k}: {html.escape(v)}" for k, v in context.items())
    body = []
    for c in charts:
        flagged = len(c.regressions)
        note = f' <span class="bad">{flagged} regression(s)</span>' if flagged else ""
        latest = fmt_value(c.points[-1].value, c.unit)
        body.append(
            f"<section><h2>{html.escape(c.name)} <small>latest {html.escape(latest)}</small>"
            f"{note}</h2>\n{svg(c)}\n</section>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>"
        "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
        "h2{font-size:1.05em;margin:1.6em 0 .3em}small{color:#666;font-weight:normal}"
        ".bad{color:#d62728;font-size:.9em}p{color:#555}"
        "</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n<p>{facts}</p>\n"
        "<p>Each point is one recorded run (vertical bar: its confidence interval); "
        "red points are runs that flagged the benchmark as a regression.</p>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
