"""The coverage gates as pure functions of the figures: total line coverage, critical
paths at 100%, the drop from the baseline ("review required"), and the coverage of the
changed lines. Each returns a `Gate`: a check status, a one-line summary and findings."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from ci.coverage.cobertura import CoverageReport, FileCoverage, show
from ci.coverage.diff import DiffCoverage, ranges
from ci.result import Finding, Status

REVIEW_REQUIRED = "review-required"
# Deltas are compared at this precision: 82.3333 - 80.3333 must be 2 points, not 2.0000001.
_EPSILON = 1e-6


@dataclass(frozen=True)
class Gate:
    """One gate's outcome, as a check of the stage."""

    name: str
    status: Status
    summary: str
    findings: tuple[Finding, ...] = ()
    verdict: str = ""  # "review-required" when the drop gate trips


@dataclass(frozen=True)
class BaselineFigures:
    """The recorded figures a run is compared with: where they come from (`commit`,
    and how it was chosen, `how`) and the total and per-file percentages."""

    commit: str
    how: str
    total: float
    files: dict[str, float] = field(default_factory=dict)


def plural(count: int, word: str) -> str:
    """`1 file`, `3 files`."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def matches(path: str, pattern: str) -> bool:
    """Glob match of a workspace-relative path, as tarpaulin's --exclude-files matches:
    `*` also matches `/` (so `crates/*/src/risk.rs` and `src/risk/*` both work)."""
    return fnmatch.fnmatchcase(path, pattern)


def total_gate(report: CoverageReport, minimum: float) -> Gate:
    """Total line coverage at least `minimum` percent."""
    figure = f"{show(report.percent)} ({report.covered} of {report.coverable} lines)"
    if report.percent + _EPSILON >= minimum:
        return Gate("total", Status.PASSED, f"{figure}, minimum {minimum:g}%")
    finding = Finding(
        "total",
        f"line coverage {show(report.percent)} is below the minimum of {minimum:g}% "
        f"({report.covered} of {report.coverable} lines covered; "
        f"{_needed(report, minimum)} more must be tested)",
        rule="min-total",
    )
    return Gate(
        "total", Status.FAILED, f"{figure} is below the minimum of {minimum:g}%", (finding,)
    )


def _needed(report: CoverageReport, minimum: float) -> int:
    """How many more covered lines reach `minimum`."""
    return max(0, math.ceil(minimum * report.coverable / 100 - report.covered - _EPSILON))


def critical_gate(report: CoverageReport, globs: Sequence[str]) -> Gate:
    """Every file matched by a critical-path glob fully covered; a glob that matches
    no file of the report fails too (a misspelt path must not make the gate vacuous)."""
    if not globs:
        return Gate("critical", Status.SKIPPED, "skipped: no critical paths configured")
    findings: list[Finding] = []
    matched: dict[str, FileCoverage] = {}
    for pattern in globs:
        hits = [f for path, f in report.files.items() if matches(path, pattern)]
        if not hits:
            findings.append(
                Finding(
                    "critical",
                    f"critical path {pattern!r} matches no file of the coverage report "
                    "(misspelt, moved, or left out by exclude_files?)",
                    rule="critical-path",
                )
            )
        matched.update((f.path, f) for f in hits)
    short = sorted((f for f in matched.values() if f.uncovered), key=lambda f: f.path)
    for f in short:
        missed = f.uncovered
        findings.append(
            Finding(
                "critical",
                f"critical path at {show(f.percent)}, must be 100%: "
                f"line{'s' if len(missed) > 1 else ''} {ranges(missed)} "
                "not executed by any test",
                rule="critical-path",
                file=f.path,
                line=missed[0],
            )
        )
    if not findings:
        return Gate("critical", Status.PASSED, f"{plural(len(matched), 'critical file')} at 100%")
    parts = []
    if short:
        lines = sum(len(f.uncovered) for f in short)
        parts.append(
            f"{len(short)} of {plural(len(matched), 'critical file')} below 100% "
            f"({plural(lines, 'line')})"
        )
    unmatched = len(findings) - len(short)
    if unmatched:
        parts.append(f"{unmatched} of {plural(len(globs), 'critical path')} match no file")
    return Gate("critical", Status.FAILED, "; ".join(parts), tuple(findings))


def drop_gate(
    report: CoverageReport,
    baseline: BaselineFigures | None,
    max_drop: float,
    on_drop: str,
    missing: str = "no baseline yet",
) -> Gate:
    """No fall of more than `max_drop` points below the baseline. Past it the verdict is
    "review required": a warning (`on_drop="warn"`) or a failure (`"fail"`). Without a
    baseline the gate is skipped with `missing` as the reason: never a failure."""
    if baseline is None:
        return Gate("baseline", Status.SKIPPED, f"skipped: {missing}")
    delta = report.percent - baseline.total
    versus = f"baseline {show(baseline.total)} at {baseline.commit[:12]} ({baseline.how})"
    if -delta <= max_drop + _EPSILON:
        return Gate("baseline", Status.PASSED, f"{_signed(delta)} points vs {versus}")
    message = (
        f"line coverage fell {-delta:.2f} points, from {show(baseline.total)} "
        f"to {show(report.percent)} (allowed: {max_drop:g}); {versus}"
    )
    fail = on_drop == "fail"
    finding = Finding(
        "baseline", message, rule=REVIEW_REQUIRED, severity="error" if fail else "warning"
    )
    status = Status.FAILED if fail else Status.PASSED
    return Gate("baseline", status, "REVIEW REQUIRED: " + message, (finding,), REVIEW_REQUIRED)


def _signed(delta: float) -> str:
    return f"{delta:+.2f}" if abs(delta) >= 0.005 else "±0.00"


def diff_gate(diff: DiffCoverage | None, minimum: float, missing: str = "no base") -> Gate:
    """The changed lines no test executes, listed (warnings), with their percentage;
    below `minimum` (when above 0) the gate fails and they become errors."""
    if diff is None:
        return Gate("diff", Status.SKIPPED, f"skipped: {missing}")
    if diff.percent is None:
        return Gate(
            "diff",
            Status.PASSED,
            f"no coverable line changed ({diff.changed} changed lines: tests, docs, comments)",
        )
    missed = sum(len(v) for v in diff.uncovered.values())
    failing = minimum > 0 and diff.percent + _EPSILON < minimum
    severity = "error" if failing else "warning"
    findings = tuple(
        Finding(
            "diff",
            f"changed line{'s' if len(lines) > 1 else ''} {ranges(lines)} not executed by any test",
            rule="diff-coverage",
            file=path,
            line=lines[0],
            severity=severity,
        )
        for path, lines in diff.uncovered.items()
    )
    summary = f"{show(diff.percent)} of {plural(diff.coverable, 'changed line')} covered"
    summary += f" ({missed} not)" + (f", minimum {minimum:g}%" if minimum > 0 else "")
    if failing:
        return Gate("diff", Status.FAILED, summary + ": below the minimum", findings)
    return Gate("diff", Status.PASSED, summary, findings)
