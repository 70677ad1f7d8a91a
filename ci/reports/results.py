"""The result files a report is rendered from, read strictly: a report is refused (one
line, nothing written) when no stage has run yet or when a result file is corrupt, rather
than rendering a gate table with a silently missing stage."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ci.reports.errors import ReportError
from ci.result import StageResult, Status, result_path


def read_strict(out_dir: Path, stage: str) -> StageResult | None:
    """The stage's result; None when it has none; ReportError when the file is corrupt."""
    path = result_path(out_dir, stage)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ReportError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        return StageResult.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError) as err:
        what = type(err).__name__
        raise ReportError(
            f"{path} is not a stage result ({what}: {str(err)[:80]}); rerun "
            f"`nox -s {stage}` or delete the file"
        ) from None


def load_results(
    out_dir: Path, names: Sequence[str], *, allow_none: bool = False
) -> list[StageResult]:
    """The results of `names` present in `out_dir` (in that order); ReportError when
    one is corrupt, or when there are none at all (unless `allow_none`: the caller
    explains what is missing, as `with_jobs` does)."""
    if not out_dir.is_dir() and not allow_none:
        raise ReportError(f"no results in {out_dir}: run `invoke ci` (or a `nox -s` stage) first")
    found = (read_strict(out_dir, n) for n in names) if out_dir.is_dir() else iter(())
    results = [r for r in found if r is not None]
    if not results and not allow_none:
        raise ReportError(f"no results in {out_dir}: run `invoke ci` (or a `nox -s` stage) first")
    return results


def with_jobs(results: Sequence[StageResult], jobs_json: str) -> tuple[list[StageResult], str]:
    """(`results` completed from the jobs that produced them, a problem line or "").

    `jobs_json` is GitHub's `needs` context of the report job (job id -> {"result":
    success|failure|cancelled|skipped}). A stage job that ran but whose result did not
    arrive (an artifact renamed on one side, a failed upload) becomes an error row and the
    problem line: a report that silently drops a stage is a gate that lies. A stage job
    that did not run is shown as blocked."""
    try:
        jobs = json.loads(jobs_json)
    except ValueError:
        raise ReportError("[report] jobs is not JSON: pass ${{ toJSON(needs) }}") from None
    if not isinstance(jobs, dict):
        raise ReportError("[report] jobs must be a JSON object (the `needs` context)")
    have = {r.stage for r in results}
    out = list(results)
    missing = []
    for job, state in jobs.items():
        outcome = state.get("result", "") if isinstance(state, dict) else ""
        if job in have:
            continue
        if outcome in ("success", "failure"):
            missing.append(f"{job} ({outcome})")
            why = f"the job ended ({outcome}) but its result did not reach the report"
            out.append(StageResult(job, Status.ERROR, 0.0, 0.0, why))
        elif outcome in ("skipped", "cancelled"):
            why = "a job it needs did not pass" if outcome == "skipped" else "cancelled"
            out.append(StageResult(job, Status.BLOCKED, 0.0, 0.0, f"not run: {why}"))
    if not missing:
        return out, ""
    return out, (
        f"jobs ran but their results did not reach the report: {', '.join(missing)}; check "
        "that each job uploads target/pipeline/ as pipeline-<job> (the report downloads "
        "pipeline-*)"
    )
