"""The report job checks what arrived against the jobs that ran (GitHub's `needs`
context): a stage whose job ran but whose result is missing is an error, never a
silently shorter gate table; a stage whose job did not run is blocked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ci.reports.errors import ReportError
from ci.reports.results import with_jobs
from ci.reports.tasks import run_report
from ci.result import StageResult, Status, write_result

NEEDS = {
    "lint": {"result": "failure", "outputs": {}},
    "security": {"result": "success", "outputs": {}},
    "unit": {"result": "skipped", "outputs": {}},
}


def _lint_failed() -> StageResult:
    return StageResult("lint", Status.FAILED, 1.0, 60.0, "fmt: 1 file")


def test_a_job_that_ran_without_its_result_is_an_error_row_and_a_problem() -> None:
    results, problem = with_jobs([_lint_failed()], json.dumps(NEEDS))
    rows = {r.stage: r for r in results}
    assert rows["security"].status is Status.ERROR
    assert "did not reach the report" in rows["security"].summary
    assert rows["unit"].status is Status.BLOCKED
    assert "security (success)" in problem and "pipeline-<job>" in problem
    assert "lint" not in problem  # its result arrived


def test_every_result_present_is_no_problem() -> None:
    security = StageResult("security", Status.PASSED, 1.0, 120.0, "ok")
    results, problem = with_jobs([_lint_failed(), security], json.dumps(NEEDS))
    assert problem == "" and [r.stage for r in results] == ["lint", "security", "unit"]


@pytest.mark.parametrize("text", ["not json", "[1, 2]"])
def test_a_bad_jobs_setting_is_one_line(text: str) -> None:
    with pytest.raises(ReportError, match=r"\[report\] jobs"):
        with_jobs([], text)


def test_the_report_writes_its_summary_then_fails_for_a_missing_result(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_result(out, _lint_failed())
    env = {
        "CIPIPE_OUTPUT_DIR": str(out),
        "CIPIPE_HISTORY__PATH": str(tmp_path / "h.sqlite3"),
        "CIPIPE_REPORT__JOBS": json.dumps(NEEDS),
    }
    said: list[str] = []
    with pytest.raises(ReportError, match="security"):
        run_report(tmp_path, env=env, say=said.append)
    summary = (out / "summary.md").read_text()
    assert "security" in summary and "unit" in summary  # the table still shows them


def test_no_result_at_all_names_the_jobs_whose_results_went_missing(tmp_path: Path) -> None:
    env = {
        "CIPIPE_OUTPUT_DIR": str(tmp_path / "out"),
        "CIPIPE_HISTORY__PATH": str(tmp_path / "h.sqlite3"),
        "CIPIPE_REPORT__JOBS": json.dumps({"lint": {"result": "success", "outputs": {}}}),
    }
    with pytest.raises(ReportError, match=r"lint \(success\)"):
        run_report(tmp_path, env=env, say=lambda _line: None)
    assert "lint" in (tmp_path / "out" / "summary.md").read_text()
