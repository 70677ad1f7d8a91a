"""Charts as inline SVG (no JavaScript, no CDN): the one chart module of the pipeline, for
the HTML report and the benchmark history page; both open from disk.

Every chart is an `<svg class="chart" data-chart="...">` whose marks carry classes a test
(or a person with the inspector) can count: `bar` and `budget` in the duration chart,
`point` on every line (`point flagged` for a failed run or a regression), `interval` for
a confidence interval, `deploy` in the deployment timeline. Each mark has a `<title>`, the
browser's tooltip, with its exact value. Points are placed by their time, not by their
rank: a week without runs is a gap, not one step.

`trend` draws one series on its own axis, so series orders of magnitude apart (a 4 ns
and a 10 µs benchmark) are each readable: draw one per series (small multiples).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

WIDTH = 760
PALETTE = ("#2563eb", "#db2777", "#16a34a", "#ea580c", "#7c3aed", "#0891b2", "#ca8a04")
STATUS_COLOURS = {
    "passed": "#16a34a",
    "skipped": "#0891b2",
    "failed": "#dc2626",
    "error": "#dc2626",
    "internal-error": "#dc2626",
    "timeout": "#dc2626",
    "blocked": "#ca8a04",
    "cancelled": "#ca8a04",
}
OUTCOME_COLOURS = {
    "succeeded": "#16a34a",
    "failed": "#dc2626",
    "rolled_back": "#ea580c",
    "in_progress": "#64748b",
}


@dataclass(frozen=True)
class Bar:
    """One stage in the duration chart."""

    label: str
    value: float
    budget: float
    status: str
    cached: bool = False  # replayed: `value` is the original run's time, drawn hatched


@dataclass(frozen=True)
class Point:
    """One value of a series; `flag` marks it (a regression) in red; `low`..`high` its
    confidence interval, when it has one."""

    at: datetime
    value: float
    label: str = ""
    flag: bool = False
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Mark:
    """One deployment in the timeline."""

    at: datetime
    lane: str
    outcome: str
    label: str


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _svg(
    kind: str, height: int, body: list[str], title: str, width: int = WIDTH, series: str = ""
) -> str:
    named = f' data-series="{escape(series)}"' if series else ""
    return (
        f'<svg class="chart" data-chart="{escape(kind)}"{named} role="img" '
        f'aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def time_axis(times: Sequence[datetime], left: float, width: float) -> Callable[[datetime], float]:
    """x of a time: proportional to its distance from the first one (one time: centred)."""
    start, end = min(times), max(times)
    span = (end - start).total_seconds()
    if span <= 0:
        return lambda _at: left + width / 2
    return lambda at: left + width * (at - start).total_seconds() / span


def _circle(p: Point, x: float, y: float, colour: str, tip: str) -> str:
    cls, fill, radius = ("point flagged", "#dc2626", 5.5) if p.flag else ("point", colour, 3.5)
    return (
        f'<circle class="{cls}" cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{fill}">'
        f"<title>{escape(tip)}</title></circle>"
    )


def nice_max(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def durations(bars: Sequence[Bar], unit: str = "s") -> str:
    """Horizontal bars: each stage's duration, coloured by status, with its budget as a
    vertical tick; a bar past its budget is outlined in red."""
    row, left, right = 28, 130, 90
    height = 30 + row * max(1, len(bars))
    top = max([b.value for b in bars] + [b.budget for b in bars] + [1.0])
    scale = (WIDTH - left - right) / nice_max(top)
    body = [
        f'<text x="{left}" y="14" class="axis">0</text>',
        f'<text x="{WIDTH - right}" y="14" text-anchor="end" class="axis">'
        f"{_num(nice_max(top))} {unit}</text>",
    ]
    for i, b in enumerate(bars):
        y = 22 + i * row
        w = max(1.0, b.value * scale)
        over = b.value > b.budget
        colour = STATUS_COLOURS.get(b.status, "#64748b")
        stroke = ' stroke="#dc2626" stroke-width="2"' if over else ""
        tip = f"{b.label}: {_num(b.value)} {unit} of {_num(b.budget)} {unit} budget ({b.status})"
        kind, note = "bar", " (over budget)" if over else ""
        if b.cached:  # its verdict is an earlier run's: that run's time, hatched
            kind, note = "bar cached", note + " (cached)"
            stroke += ' fill-opacity="0.45" stroke-dasharray="4 2" stroke="#475569"'
            tip = f"{b.label}: replayed from the cache; {tip.split(': ', 1)[1]} when it ran"
        body += [
            f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" class="label">'
            f"{escape(b.label)}</text>",
            f'<rect class="{kind}" data-value="{b.value}" x="{left}" y="{y}" width="{w:.1f}" '
            f'height="{row - 8}" fill="{colour}"{stroke}><title>{escape(tip)}</title></rect>',
            f'<line class="budget" x1="{left + b.budget * scale:.1f}" y1="{y - 3}" '
            f'x2="{left + b.budget * scale:.1f}" y2="{y + row - 5}" stroke="#111827" '
            f'stroke-width="2" stroke-dasharray="3 2"><title>budget {_num(b.budget)} {unit}'
            f"</title></line>",
            f'<text x="{left + w + 6:.1f}" y="{y + 15}" class="value">{_num(b.value)} {unit}'
            f"{note}</text>",
        ]
    return _svg("durations", height, body, "Stage durations against their budgets")


def lines(
    kind: str,
    series: dict[str, list[Point]],
    *,
    unit: str,
    title: str,
    target: float | None = None,
    target_label: str = "target",
    floor_zero: bool = True,
) -> str:
    """A line per series over time, a circle per point, an optional target line."""
    height, left, right, top_pad, bottom = 260, 60, 170, 16, 40
    values = [p.value for pts in series.values() for p in pts]
    if target is not None:
        values.append(target)
    times = sorted({p.at for pts in series.values() for p in pts})
    hi = nice_max(max(values or [1.0]))
    lo = 0.0
    if not floor_zero and values:
        magnitude = 10 ** math.floor(math.log10(max(abs(min(values)), 1e-9)))
        lo = math.floor(min(values) / magnitude) * magnitude
        lo = lo if lo < min(values) else lo - magnitude
    span = (hi - lo) or 1.0
    plot_h = height - top_pad - bottom
    x_of = time_axis(times or [datetime.min], left, WIDTH - left - right)

    def xy(p: Point) -> tuple[float, float]:
        return x_of(p.at), top_pad + plot_h * (1 - (p.value - lo) / span)

    body = [
        f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{WIDTH - right}" '
        f'y2="{top_pad + plot_h}" stroke="#94a3b8"/>',
        f'<text x="{left - 6}" y="{top_pad + 4}" text-anchor="end" class="axis">'
        f"{_num(hi)} {escape(unit)}</text>",
        f'<text x="{left - 6}" y="{top_pad + plot_h}" text-anchor="end" class="axis">'
        f"{_num(lo)}</text>",
    ]
    if times:
        body += [
            f'<text x="{left}" y="{height - 12}" class="axis">{times[0]:%Y-%m-%d}</text>',
            f'<text x="{WIDTH - right}" y="{height - 12}" text-anchor="end" class="axis">'
            f"{times[-1]:%Y-%m-%d %H:%M}</text>",
        ]
    if target is not None:
        ty = top_pad + plot_h * (1 - (target - lo) / span)
        body.append(
            f'<line class="target" x1="{left}" y1="{ty:.1f}" x2="{WIDTH - right}" y2="{ty:.1f}" '
            f'stroke="#dc2626" stroke-dasharray="6 4"><title>{escape(target_label)} '
            f"{_num(target)} {escape(unit)}</title></line>"
        )
    for i, (name, pts) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        coords = [xy(p) for p in pts]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            body.append(
                f'<polyline class="series" data-series="{escape(name)}" points="{path}" '
                f'fill="none" stroke="{colour}" stroke-width="2"/>'
            )
        for p, (x, y) in zip(pts, coords, strict=True):
            tip = f"{name}: {_num(p.value)} {unit} at {p.at:%Y-%m-%d %H:%M} {p.label}".strip()
            body.append(_circle(p, x, y, colour, tip))
        ly = top_pad + 14 + i * 18
        body += [
            f'<rect x="{WIDTH - right + 14}" y="{ly - 9}" width="10" height="10" fill="{colour}"/>',
            f'<text x="{WIDTH - right + 30}" y="{ly}" class="legend">{escape(name[:22])}</text>',
        ]
    return _svg(kind, height, body, title)


def timeline(marks: Sequence[Mark]) -> str:
    """Deployments over time, one lane per environment, coloured by outcome."""
    lanes = sorted({m.lane for m in marks})
    row, left, right = 34, 110, 40
    height = 50 + row * max(1, len(lanes))
    times = sorted(m.at for m in marks)
    start, end = (times[0], times[-1]) if times else (None, None)
    span = (end - start).total_seconds() if start and end else 0.0
    body: list[str] = []
    for i, lane in enumerate(lanes):
        y = 24 + i * row
        body += [
            f'<text x="{left - 10}" y="{y + 5}" text-anchor="end" class="label">'
            f"{escape(lane)}</text>",
            f'<line x1="{left}" y1="{y}" x2="{WIDTH - right}" y2="{y}" stroke="#e2e8f0"/>',
        ]
    for m in marks:
        y = 24 + lanes.index(m.lane) * row
        frac = (m.at - start).total_seconds() / span if start and span else 0.5
        x = left + frac * (WIDTH - left - right)
        colour = OUTCOME_COLOURS.get(m.outcome, "#64748b")
        tip = f"{m.lane} {m.label}: {m.outcome} at {m.at:%Y-%m-%d %H:%M}"
        body.append(
            f'<circle class="deploy" data-outcome="{escape(m.outcome)}" cx="{x:.1f}" '
            f'cy="{y}" r="7" fill="{colour}"><title>{escape(tip)}</title></circle>'
        )
    if start and end:
        body += [
            f'<text x="{left}" y="{height - 10}" class="axis">{start:%Y-%m-%d}</text>',
            f'<text x="{WIDTH - right}" y="{height - 10}" text-anchor="end" class="axis">'
            f"{end:%Y-%m-%d %H:%M}</text>",
        ]
    return _svg("deployments", height, body, "Deployments by environment and outcome")


def _range(points: Sequence[Point]) -> tuple[float, float]:
    """The y range of one series: its own values and intervals, padded; never below zero
    for values that are not (a duration axis does not go negative)."""
    lows = [p.value if p.low is None else min(p.low, p.value) for p in points]
    highs = [p.value if p.high is None else max(p.high, p.value) for p in points]
    lo, hi = min(lows), max(highs)
    pad = (hi - lo) * 0.1 if hi > lo else (abs(lo) * 0.05 or 1.0)
    return (max(0.0, lo - pad) if lo >= 0 else lo - pad), hi + pad


def trend(
    kind: str,
    name: str,
    points: Sequence[Point],
    *,
    fmt: Callable[[float], str],
    width: int = 370,
    height: int = 170,
) -> str:
    """One series over time on its own y axis (its range, not zero to the largest of all
    series): a line, a point per run placed by its time, confidence intervals as vertical
    bars, flagged runs (regressions) as larger red points. `fmt` writes a value with its
    unit; the chart is named by `name` inside it."""
    left, right, top, bottom = 66, 14, 24, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    lo, hi = _range(points)
    x_of = time_axis([p.at for p in points], left, plot_w)

    def y_of(value: float) -> float:
        return top + plot_h * (1 - (value - lo) / (hi - lo))

    latest = points[-1]
    body = [
        f'<text x="{left}" y="15" class="label">{escape(name)}</text>',
        f'<text x="{width - right}" y="15" text-anchor="end" class="value">latest '
        f"{escape(fmt(latest.value))}</text>",
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fff" '
        'stroke="#cbd5e1"/>',
    ]
    for k in range(3):
        value = lo + (hi - lo) * (k + 0.5) / 3
        y = y_of(value)
        body.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eef2f7"/>'
            f'<text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end" class="axis">'
            f"{escape(fmt(value))}</text>"
        )
    for p in points:
        if p.low is not None and p.high is not None and p.high > p.low:
            x = x_of(p.at)
            body.append(
                f'<line class="interval" x1="{x:.1f}" x2="{x:.1f}" y1="{y_of(p.low):.1f}" '
                f'y2="{y_of(p.high):.1f}" stroke="#94a3b8" stroke-width="2"/>'
            )
    if len(points) > 1:
        path = " ".join(f"{x_of(p.at):.1f},{y_of(p.value):.1f}" for p in points)
        body.append(
            f'<polyline class="series" points="{path}" fill="none" stroke="{PALETTE[0]}" '
            'stroke-width="1.5"/>'
        )
    for p in points:
        tip = " · ".join(
            part for part in (name, fmt(p.value), f"{p.at:%Y-%m-%d %H:%M} UTC", p.label) if part
        )
        body.append(_circle(p, x_of(p.at), y_of(p.value), PALETTE[0], tip))
    first, last = points[0].at, points[-1].at
    body += [
        f'<text x="{left}" y="{height - 10}" class="axis">{first:%Y-%m-%d}</text>',
        f'<text x="{left + plot_w}" y="{height - 10}" text-anchor="end" class="axis">'
        f"{last:%Y-%m-%d %H:%M} ({len(points)} runs)</text>",
    ]
    return _svg(kind, height, body, name, width, series=name)
