"""The coverage stage's steps after the measurement: the gates as checks, the Codecov
upload, the history record, and the files it writes (masked copies of tarpaulin's
reports, the markdown section, the figures as JSON)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from ci.contract import Clock, StageContext
from ci.coverage import baseline as history
from ci.coverage import tarpaulin
from ci.coverage.cobertura import CoverageReport, show
from ci.coverage.config import CoverageConfig
from ci.coverage.diff import DiffCoverage, changed_lines, diff_coverage
from ci.coverage.gates import (
    BaselineFigures,
    Gate,
    critical_gate,
    diff_gate,
    drop_gate,
    total_gate,
)
from ci.coverage.git import BaseRef, Git
from ci.coverage.report import Outcome, markdown
from ci.errors import HistoryError, NoHistoryYet
from ci.history import RunInfo, open_store
from ci.redact import mask_xml
from ci.result import Finding, Status, atomic_write


def _check(clock: Clock, gate: Gate) -> None:
    with clock.check(gate.name) as chk:
        chk.status = gate.status
        chk.summary = gate.summary
    clock.findings += gate.findings


def gates(
    ctx: StageContext,
    cfg: CoverageConfig,
    report: CoverageReport,
    git: Git,
    head: str | None,
    base: BaseRef | None,
    base_sha: str | None,
    clock: Clock,
) -> Outcome:
    """Apply the four gates (total, critical, baseline, diff) as checks."""
    found: list[Gate] = [total_gate(report, cfg.min_total), critical_gate(report, cfg.critical)]
    figures, missing = _baseline(ctx, cfg, git, head, base, base_sha)
    if isinstance(missing, Gate):
        found.append(missing)
    else:
        found.append(drop_gate(report, figures, cfg.max_drop, cfg.on_drop, missing))
    changes: DiffCoverage | None = None
    if base is not None and base_sha is not None:
        changes = diff_coverage(report, changed_lines(git.diff(base_sha)))
        where = f"changed since {base_sha[:12]} (merge base with {base.ref})"
        gate = diff_gate(changes, cfg.diff_min)
        found.append(Gate(gate.name, gate.status, f"{gate.summary}; {where}", gate.findings))
    else:
        found.append(
            diff_gate(
                None,
                cfg.diff_min,
                "no base to compare with: `nox -s coverage -- --base REF`, "
                "[tool.pipeline.coverage] base, or GITHUB_BASE_REF on a pull request",
            )
        )
    for gate in found:
        _check(clock, gate)
    return Outcome(report, found, figures, changes)


def _baseline(
    ctx: StageContext,
    cfg: CoverageConfig,
    git: Git,
    head: str | None,
    base: BaseRef | None,
    base_sha: str | None,
) -> tuple[BaselineFigures | None, str | Gate]:
    """The recorded figures to compare with, or why there are none (a reason, or an
    ERROR gate when the history store cannot be read)."""
    if head is None:
        return None, "not a git checkout: no commit to take a baseline from"
    if base is not None and base_sha is not None:
        start, how = base_sha, f"merge base with {base.ref}"
    else:
        start, how = head, "HEAD's history"
    candidates = git.history(start, cfg.history_depth)
    try:
        with open_store(ctx.settings, create=False) as store:
            found = history.find(store, candidates, how)
    except NoHistoryYet:
        found = None
    except HistoryError as err:
        return None, Gate("baseline", Status.ERROR, f"history store unusable: {err}")
    if found is not None:
        return found, ""
    return None, (
        f"no baseline yet: nothing recorded for {start[:12]} ({how}) or the "
        f"{len(candidates) - 1} commits before it"
    )


def codecov_check(
    ctx: StageContext,
    cfg: CoverageConfig,
    report: Path,
    info: RunInfo,
    git: Git,
    clock: Clock,
) -> None:
    """Upload `report` (the masked Cobertura copy) to Codecov through the official CLI
    when CODECOV_TOKEN is set; else skipped with a note. A failed upload fails the stage
    only when `codecov.required`."""
    from ci.coverage.codecov import UploadError, metadata, upload

    token = ctx.settings.env.get("CODECOV_TOKEN", "").strip()
    with clock.check("codecov") as chk:
        if not token:
            chk.status = Status.SKIPPED
            chk.summary = "skipped: CODECOV_TOKEN is not set (no upload)"
            return
        ctx.runner.redact.add([token])
        meta = metadata(
            cfg.codecov, ctx.settings.env, _upload_commit(git, info, ctx.settings.env), info.branch
        )
        try:
            where = upload(ctx.runner, cfg.codecov, token, report, meta, ctx.workspace)
        except UploadError as err:
            if cfg.codecov.required:
                chk.status = Status.FAILED
                chk.summary = str(err)
                clock.findings.append(Finding("codecov", str(err), rule="codecov-upload"))
            else:
                chk.summary = f"upload failed (codecov.required = false): {err}"
                clock.findings.append(
                    Finding("codecov", str(err), rule="codecov-upload", severity="warning")
                )
            return
        chk.summary = f"uploaded for {meta.commit[:12]}" + (f": {where}" if where else "")


def _upload_commit(git: Git, info: RunInfo, env: Mapping[str, str]) -> str:
    """The commit Codecov files the upload under: on a pull request's merge checkout,
    the PR's head (the merge commit's second parent), as Codecov's own CLI does."""
    if info.commit and env.get("GITHUB_HEAD_REF"):
        res = git.run("rev-parse", "--verify", "--quiet", f"{info.commit}^2")
        if res.ok and res.stdout.strip():
            return res.stdout.strip()
    return info.commit


def history_check(
    ctx: StageContext, report: CoverageReport, info: RunInfo, clock: Clock, *, recordable: bool
) -> None:
    """Record this run's figures, keyed by commit and branch (a run on a tree with
    uncommitted changes is recorded as such and never serves as a baseline)."""
    with clock.check("history") as chk:
        if not recordable:
            chk.status = Status.SKIPPED
            chk.summary = "skipped: not recorded (tests failed, or the figures were given)"
            return
        if not info.commit:
            chk.status = Status.SKIPPED
            chk.summary = "skipped: not recorded (not a git checkout)"
            return
        run = info.finished(clock.status().value)
        try:
            with open_store(ctx.settings) as store:
                history.record(store, run, report)
                where = store.location
        except HistoryError as err:
            chk.status = Status.ERROR
            chk.summary = f"figures not recorded: {err}"
            clock.findings.append(Finding("history", chk.summary, rule="history"))
            return
        dirty = " (uncommitted changes: never a baseline)" if info.dirty else ""
        chk.summary = (
            f"recorded {show(report.percent)} and {len(report.files)} files for "
            f"{info.commit[:12]} on {info.branch or 'no branch'}{dirty} in {where}"
        )


def keep(ctx: StageContext, report: Path, artifacts: dict[str, str]) -> None:
    """Masked copies of tarpaulin's Cobertura and HTML reports in the artifacts folder
    (the raw files stay in the stage's scratch folder and are removed with it)."""
    redact = ctx.runner.redact
    cob = ctx.artifacts_dir / tarpaulin.COBERTURA
    text = report.read_text(encoding="utf-8", errors="replace")
    atomic_write(cob, mask_xml(text, redact))
    artifacts["cobertura"] = str(cob)
    html = report.with_name(tarpaulin.HTML)
    if html.is_file():
        dest = ctx.artifacts_dir / tarpaulin.HTML
        atomic_write(dest, redact(html.read_text(encoding="utf-8", errors="replace")))
        artifacts["html"] = str(dest)


def write_reports(
    ctx: StageContext, cfg: CoverageConfig, outcome: Outcome, artifacts: dict[str, str]
) -> None:
    """`coverage.md` (the summary's coverage section) and `figures.json` (total, files,
    baseline, changed lines), both masked."""
    redact = ctx.runner.redact
    md = ctx.artifacts_dir / "coverage.md"
    atomic_write(md, redact(markdown(outcome, minimum=cfg.min_total)))
    artifacts["markdown"] = str(md)
    data = figures(outcome)
    path = ctx.artifacts_dir / "figures.json"
    atomic_write(path, json.dumps(redact.data(data), indent=2, sort_keys=True) + "\n")
    artifacts["figures"] = str(path)


def figures(outcome: Outcome) -> dict[str, object]:
    """The run's figures as plain data (what `figures.json` holds)."""
    report = outcome.report
    base = outcome.baseline
    diff = outcome.diff
    return {
        "verdict": outcome.verdict,
        "total": {
            "percent": round(report.percent, 4),
            "covered": report.covered,
            "coverable": report.coverable,
        },
        "files": [
            {
                "path": f.path,
                "percent": round(f.percent, 4),
                "covered": f.covered,
                "coverable": f.coverable,
                "uncovered": f.uncovered,
            }
            for f in report.by_uncovered()
        ],
        "baseline": None
        if base is None
        else {"commit": base.commit, "how": base.how, "percent": round(base.total, 4)},
        "diff": None
        if diff is None
        else {
            "percent": None if diff.percent is None else round(diff.percent, 4),
            "coverable": diff.coverable,
            "uncovered": {path: list(lines) for path, lines in diff.uncovered.items()},
        },
    }
