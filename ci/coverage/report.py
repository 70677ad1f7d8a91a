"""The coverage reports: the per-file table (files with the most uncovered lines first)
for the terminal, and the markdown section for the step summary and the PR comment.
Pure: they take the figures and the gates' outcomes and return text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ci.coverage.cobertura import CoverageReport, FileCoverage, show
from ci.coverage.diff import DiffCoverage, ranges
from ci.coverage.gates import REVIEW_REQUIRED, BaselineFigures, Gate, plural
from ci.result import Status

TERMINAL_ROWS = 15  # the terminal table's length; the markdown lists every file
MARKDOWN_ROWS = 200  # past this the markdown table says how many more files there are


@dataclass(frozen=True)
class Outcome:
    """Everything the reports show about one coverage run."""

    report: CoverageReport
    gates: Sequence[Gate]
    baseline: BaselineFigures | None = None
    diff: DiffCoverage | None = None

    @property
    def verdict(self) -> str:
        """passed | failed | review-required (a drop past the limit, warned or failed)."""
        if any(g.verdict == REVIEW_REQUIRED for g in self.gates):
            if any(g.status is Status.FAILED and g.name != "baseline" for g in self.gates):
                return "failed"
            return REVIEW_REQUIRED
        return "failed" if any(g.status is Status.FAILED for g in self.gates) else "passed"

    def delta(self, path: str | None = None) -> float | None:
        """Points gained (+) or lost (-) against the baseline, total or for one file."""
        if self.baseline is None:
            return None
        if path is None:
            return self.report.percent - self.baseline.total
        before = self.baseline.files.get(path)
        return None if before is None else self.report.files[path].percent - before


def _delta(value: float | None) -> str:
    if value is None:
        return "new"
    return "±0.00" if abs(value) < 0.005 else f"{value:+.2f}"


def _row(f: FileCoverage) -> tuple[str, str, str, str, str]:
    return (f.path, str(f.coverable), str(f.covered), str(len(f.uncovered)), show(f.percent))


def table(outcome: Outcome, rows: int = TERMINAL_ROWS) -> str:
    """A fixed-width table of the files with uncovered lines (most first), and the total."""
    report = outcome.report
    files = [f for f in report.by_uncovered() if f.uncovered]
    header = ("file", "lines", "covered", "uncovered", "coverage")
    body = [_row(f) for f in files[:rows]]
    total = ("total", str(report.coverable), str(report.covered), "", show(report.percent))
    widths = [max(len(r[i]) for r in (header, *body, total)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))])

    out = [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in body)]
    hidden = len(files) - len(body)
    full = len(report.files) - len(files)
    if hidden:
        out.append(f"... {plural(hidden, 'more file')} with uncovered lines (see coverage.md)")
    if full:
        out.append(f"... {plural(full, 'file')} fully covered")
    out.append(line(total))
    return "\n".join(out)


_TITLE = {"passed": "passed", "failed": "FAILED", REVIEW_REQUIRED: "review required"}


def markdown(outcome: Outcome, *, minimum: float, rows: int = MARKDOWN_ROWS) -> str:
    """The coverage section of `summary.md`: the figures, the delta, each gate, the
    uncovered critical and changed lines, and the per-file table."""
    report = outcome.report
    verdict = outcome.verdict
    out = [
        f"### Coverage: {show(report.percent)} ({report.covered} of {report.coverable} lines)"
        f" — {_TITLE[verdict]}",
        "",
        "| gate | result |",
        "|---|---|",
        f"| total (minimum {minimum:g}%) | {show(report.percent)} |",
    ]
    for gate in outcome.gates:
        if gate.name != "total":
            out.append(f"| {_GATE_NAMES.get(gate.name, gate.name)} | {_cell(gate.summary)} |")
    drop = next((g for g in outcome.gates if g.verdict == REVIEW_REQUIRED), None)
    if drop is not None:
        out += [
            "",
            f"> **Review required**: {drop.findings[0].message.split(';')[0]}. A reviewer "
            "accepts the drop, or tests bring the figure back.",
        ]
    critical = [f for g in outcome.gates if g.name == "critical" for f in g.findings]
    if critical:
        out += ["", "#### Critical paths not fully covered", ""]
        out += [f"- `{f.file}`: {f.message}" if f.file else f"- {f.message}" for f in critical]
    if outcome.diff is not None and outcome.diff.uncovered:
        out += ["", "#### Changed lines no test executes", ""]
        out += [f"- `{path}`: {ranges(lines)}" for path, lines in outcome.diff.uncovered.items()]
    out += _file_table(outcome, rows)
    return "\n".join(out) + "\n"


_GATE_NAMES = {"critical": "critical paths (100%)", "baseline": "baseline", "diff": "changed lines"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _file_table(outcome: Outcome, rows: int) -> list[str]:
    files = outcome.report.by_uncovered()
    with_delta = outcome.baseline is not None
    head = "| file | lines | uncovered | coverage |" + (" Δ |" if with_delta else "")
    rule = "|---|---:|---:|---:|" + ("---:|" if with_delta else "")
    out = ["", "<details><summary>Files by uncovered lines</summary>", "", head, rule]
    for f in files[:rows]:
        cells = f"| `{f.path}` | {f.coverable} | {len(f.uncovered)} | {show(f.percent)} |"
        out.append(cells + (f" {_delta(outcome.delta(f.path))} |" if with_delta else ""))
    if len(files) > rows:
        out.append(f"| … {len(files) - rows} more files | | | |" + (" |" if with_delta else ""))
    out += ["", "</details>"]
    return out
