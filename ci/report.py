"""Reports rendered only from the result files: the terminal gate table and
`summary.md` (GitHub step summary / PR comment). Rebuildable without rerunning."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ci.result import StageResult, Status, atomic_write, read_result

_MARK = {
    Status.PASSED: "PASS",
    Status.FAILED: "FAIL",
    Status.ERROR: "ERROR",
    Status.TIMEOUT: "TIMEOUT",
    Status.INTERNAL: "INTERNAL ERROR",
    Status.SKIPPED: "SKIP",
    Status.BLOCKED: "BLOCKED",
    Status.CANCELLED: "CANCELLED",
}


def load(out_dir: Path, names: Sequence[str]) -> list[StageResult]:
    """The results of `names` that exist in `out_dir`, in the given order."""
    return [r for r in (read_result(out_dir, n) for n in names) if r is not None]


def mark(r: StageResult) -> str:
    """`PASS`, or `PASS (cached)` for a result replayed from the stage cache."""
    return _MARK[r.status] + (" (cached)" if r.cached else "")


def duration(r: StageResult) -> str:
    """`12.3s / 60s` (`!` past the budget); a replayed stage: `cached, ran 12.3s / 60s`,
    the time of the run it came from (the replay itself takes milliseconds)."""
    if r.cached:
        flag = " !" if r.earned_s > r.budget_s else ""
        return f"cached, ran {r.earned_s:.1f}s / {r.budget_s:.0f}s{flag}"
    flag = " !" if r.over_budget else ""
    return f"{r.duration_s:.1f}s / {r.budget_s:.0f}s{flag}"


def summary(r: StageResult) -> str:
    """The stage's summary; a replayed one's says the run and time it came from."""
    if not r.cached:
        return r.summary
    origin = f"cached from run {r.cached.get('run_id') or '?'} at {r.cached.get('at', '?')}"
    return f"{origin}: {r.summary}" if r.summary else origin


def _findings(r: StageResult) -> str:
    errors = sum(f.severity == "error" for f in r.findings)
    warnings = len(r.findings) - errors
    return f"{errors}" + (f" (+{warnings} warn)" if warnings else "")


def table(results: Sequence[StageResult]) -> str:
    """A fixed-width gate table: stage, status, duration vs budget, findings, summary."""
    header = ("stage", "status", "time / budget", "findings", "summary")
    rows = [
        (
            r.stage + ("" if r.blocking else " (advisory)"),
            mark(r),
            duration(r),
            _findings(r),
            _first_line(summary(r), 70),
        )
        for r in results
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()
        for row in (header, *rows)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    total = sum(r.duration_s for r in results)
    lines.append(
        f"total stage time {total:.1f}s"
        + (" (! = over budget)" if any(r.over_budget for r in results) else "")
    )
    lines += [f"configured by {c}" for c in configs(results)]
    return "\n".join(lines)


def configs(results: Sequence[StageResult]) -> list[str]:
    """The files that configured the results' runs (normally one), in first-seen order."""
    return list(dict.fromkeys(r.config for r in results if r.config))


def markdown(results: Sequence[StageResult], *, title: str = "Pipeline") -> str:
    """`summary.md`: the gate table plus every blocking finding, as GitHub markdown."""
    ok = all(r.status.ok or not r.blocking for r in results)
    out = [f"## {title}: {'passed' if ok else 'failed'}", ""]
    out += [f"Configured by `{c}`." for c in configs(results)]
    out += [""] if configs(results) else []
    out += ["| stage | status | time / budget | findings | summary |", "|---|---|---|---|---|"]
    for r in results:
        text = _first_line(summary(r), 120).replace("|", "\\|")
        out.append(f"| {r.stage} | {mark(r)} | {duration(r)} | {_findings(r)} | {text} |")
    details = [(r, f) for r in results for f in r.findings if f.severity == "error"]
    if details:
        out += ["", "### Findings", ""]
        for r, f in details[:50]:
            out.append(f"- **{r.stage}** {f.one_line()}".replace("|", "\\|"))
        if len(details) > 50:
            out.append(f"- … and {len(details) - 50} more (see the stage JSON files)")
    for r in results:
        section = _section(r)
        if section:
            out += ["", section.rstrip()]
    return "\n".join(out) + "\n"


def _section(result: StageResult) -> str:
    """A stage's own markdown (benchmark table, coverage figures): the file it names as
    `artifacts["markdown"]`, already masked by the stage that wrote it."""
    path = result.artifacts.get("markdown")
    if not path:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return ""


def write_summary(
    out_dir: Path,
    results: Sequence[StageResult],
    step_summary: str | None,
    redact: Callable[[str], str] | None = None,
) -> Path:
    """Write `<out_dir>/summary.md` (masked); append it to $GITHUB_STEP_SUMMARY when given."""
    text = markdown([r.masked(redact) for r in results] if redact else results)
    path = out_dir / "summary.md"
    atomic_write(path, text)
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as fh:
            fh.write(text)
    return path


def _first_line(text: str, width: int) -> str:
    line = (text.strip().splitlines() or [""])[0]
    return line if len(line) <= width else line[: width - 1] + "…"
