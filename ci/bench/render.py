"""The comparison as people read it: a GitHub-flavoured markdown table for the step
summary and PR comment, the same table fixed-width for the terminal, and the one-line
summaries of the stage's checks."""

from __future__ import annotations

from collections.abc import Sequence

from ci.bench.compare import (
    INSTRUCTIONS,
    Report,
    Row,
    Verdict,
    fmt_bytes,
    fmt_percent,
    fmt_value,
)
from ci.console import text_table as fixed_width

HEADER = ("benchmark", "base", "head", "change", "confidence", "verdict")
_MODE_TITLE = {"wall": "wall clock (criterion)", INSTRUCTIONS: "instruction counts (callgrind)"}


def _value(row: Row, side: str) -> str:
    est = row.base if side == "base" else row.head
    return "—" if est is None else fmt_value(est.value, row.unit)


def _confidence(row: Row, report: Report) -> str:
    if row.change is None:
        if row.head is not None and row.unit == "ns" and row.head.high > row.head.low:
            level = f"{report.confidence * 100:g}%"
            return f"{level}: {fmt_value(row.head.low, 'ns')} to {fmt_value(row.head.high, 'ns')}"
        return "—"
    if row.unit == "instructions":
        return f"±{report.settings.get('instruction_noise_percent', 0):g}% (deterministic)"
    return (
        f"{report.confidence * 100:g}%: {fmt_percent(row.change.low)} to "
        f"{fmt_percent(row.change.high)}"
    )


def _verdict(row: Row) -> str:
    text = row.verdict.value
    if row.breaches:
        text = "target missed" if row.verdict is Verdict.MEASURED else f"{text}, target missed"
    return text


def cells(row: Row, report: Report) -> tuple[str, ...]:
    """The six cells of a row."""
    change = "—" if row.change is None else fmt_percent(row.change.ratio)
    return (
        row.name,
        _value(row, "base"),
        _value(row, "head"),
        change,
        _confidence(row, report),
        _verdict(row),
    )


def _md_cell(text: str, bold: bool = False) -> str:
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    return f"**{text}**" if bold and text else text


def headline(report: Report) -> str:
    """One sentence: the verdict of the whole comparison."""
    threshold = f"{report.threshold * 100:g}%"
    regressions = report.regressions
    parts = []
    if report.breaches:
        parts.append(f"{len(report.breaches)} target(s) missed")
    if regressions:
        names = ", ".join(
            f"{r.name} {fmt_percent(r.change.ratio)}" for r in regressions if r.change
        )
        what = "review required" if report.on_regression == "warn" else "failed"
        parts.append(f"{what}: {len(regressions)} regression(s) over {threshold}: {names}")
    if parts:
        return "; ".join(parts)
    if report.base_commit is None:
        return f"{len(report.rows)} benchmark(s) measured and recorded (no base to compare with)"
    return f"no regression over {threshold}"


def markdown(report: Report) -> str:
    """The stage's markdown section: headline, table, how it was measured, breaches."""
    title = _MODE_TITLE.get(report.mode, report.mode)
    lines = [f"### Benchmarks: {title}", ""]
    if report.base_commit:
        base = f"`{report.base_ref}` ({report.base_commit[:12]})"
        head = f"({report.head_commit[:12]})" if report.head_commit else "(working tree)"
        lines += [f"Base {base} vs head {head}, on the same machine.", ""]
    mark = "⚠️ " if report.regressions or report.breaches else ""
    lines += [f"{mark}**{headline(report)}**", ""]
    lines.append("| " + " | ".join(HEADER) + " |")
    lines.append("| --- | ---: | ---: | ---: | --- | --- |")
    for r in report.rows:
        bad = r.verdict is Verdict.REGRESSION or bool(r.breaches)
        row = [_md_cell(c, bold=bad and i in (3, 5)) for i, c in enumerate(cells(r, report))]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", method(report)]
    for breach in report.breaches:
        lines.append(f"- target missed: {_md_cell(breach)}")
    return "\n".join(lines) + "\n"


def method(report: Report) -> str:
    """How the numbers were made, in one paragraph."""
    s = report.settings
    threshold = f"{report.threshold * 100:g}%"
    if report.mode == INSTRUCTIONS:
        return (
            "Instructions executed (callgrind `Ir`), one run per side. A regression is an "
            f"increase over {threshold}; changes within "
            f"±{s.get('instruction_noise_percent', 0):g}% are noise."
        )
    rounds = s.get("rounds", 1)
    q = float(s.get("quantile", 0.0))
    stat = "the minimum" if q == 0 else f"the {q * 100:g}th percentile"
    sides = "interleaved rounds per side" if report.base_commit else "run"
    return (
        f"Values: {stat} of per-iteration times over {rounds} {sides} (criterion "
        "samples; interference only adds time, so the fast end is what the code costs). "
        "Confidence: two-level bootstrap interval of the change. A regression is slower "
        f"by more than {threshold} with an interval above zero."
    )


def text_table(report: Report) -> str:
    """The table for the terminal and the stage log."""
    return fixed_width(HEADER, [cells(r, report) for r in report.rows])


def regression_line(row: Row, report: Report) -> str:
    """A finding's message for a regression: name and numbers."""
    assert row.change is not None and row.base is not None and row.head is not None
    return (
        f"{row.name}: {fmt_percent(row.change.ratio)} ({fmt_value(row.base.value, row.unit)} → "
        f"{fmt_value(row.head.value, row.unit)}; {report.confidence * 100:g}% interval "
        f"{fmt_percent(row.change.low)} to {fmt_percent(row.change.high)}), over the "
        f"{report.threshold * 100:g}% threshold"
    )


def memory_note(rows: Sequence[Row]) -> str:
    """The largest peak RSS seen, for the measure check's summary."""
    peaks = [(r.peak_rss, r.name) for r in rows if r.peak_rss]
    if not peaks:
        return ""
    peak, name = max(peaks)
    return f"; peak RSS {fmt_bytes(peak)} ({name})"
