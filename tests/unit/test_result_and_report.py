from __future__ import annotations

from pathlib import Path

import pytest

from ci import report
from ci.result import (
    CheckResult,
    Finding,
    StageResult,
    Status,
    atomic_write,
    read_result,
    worst,
    write_result,
)


def sample(stage: str = "lint", status: Status = Status.FAILED) -> StageResult:
    return StageResult(
        stage=stage,
        status=status,
        duration_s=70.5,
        budget_s=60,
        summary="fmt: 1 file(s) need formatting",
        findings=[Finding("fmt", "not formatted", "rustfmt", "src/lib.rs", 1)],
        checks=[CheckResult("fmt", Status.FAILED, 0.2, "1 file")],
        artifacts={"log": "/tmp/lint.log"},
    )


def test_round_trip(tmp_path: Path) -> None:
    write_result(tmp_path, sample())
    back = read_result(tmp_path, "lint")
    assert back == sample()
    assert back is not None and back.over_budget


def test_missing_or_corrupt_result_reads_none(tmp_path: Path) -> None:
    assert read_result(tmp_path, "unit") is None
    (tmp_path / "unit.json").write_text("{half")
    assert read_result(tmp_path, "unit") is None


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    target.write_text("old")
    with pytest.raises(TypeError):
        atomic_write(target, 42)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_worst() -> None:
    assert worst([Status.PASSED, Status.FAILED, Status.SKIPPED]) is Status.FAILED
    assert worst([Status.PASSED, Status.ERROR, Status.FAILED]) is Status.ERROR
    assert worst([Status.SKIPPED]) is Status.SKIPPED
    assert worst([]) is Status.SKIPPED


def test_finding_one_line() -> None:
    f = Finding("clippy", "unneeded return", "clippy::needless_return", "src/a.rs", 3)
    assert f.one_line() == "[clippy] src/a.rs:3: unneeded return (clippy::needless_return)"
    assert Finding("tests", "x failed", crate="c").one_line() == "[tests] c: x failed"


def test_table_and_markdown() -> None:
    results = [
        sample(),
        StageResult("unit", Status.SKIPPED, 0, 120, summary="skipped: needs lint failed"),
    ]
    text = report.table(results)
    lines = text.splitlines()
    assert lines[0].split() == ["stage", "status", "time", "/", "budget", "findings", "summary"]
    assert "FAIL" in lines[2] and "70.5s / 60s !" in lines[2]
    assert "SKIP" in lines[3] and "skipped: needs lint failed" in lines[3]
    assert "over budget" in lines[-1]
    md = report.markdown(results)
    assert md.startswith("## Pipeline: failed")
    assert "| lint | FAIL | 70.5s / 60s ! | 1 |" in md
    assert "- **lint** [fmt] src/lib.rs:1: not formatted (rustfmt)" in md


def test_a_benign_skip_is_green_a_blocked_stage_never_is() -> None:
    skipped = StageResult("integration", Status.SKIPPED, 0, 1, summary="skipped: no tests/*.rs")
    assert report.markdown([sample(status=Status.PASSED), skipped]).startswith(
        "## Pipeline: passed"
    )
    blocked = StageResult("coverage", Status.BLOCKED, 0, 1, summary="not run: needs unit failed")
    md = report.markdown([sample(status=Status.PASSED), blocked])
    assert md.startswith("## Pipeline: failed") and "| coverage | BLOCKED |" in md
    advisory = StageResult("bench", Status.BLOCKED, 0, 1, blocking=False)
    assert report.markdown([sample(status=Status.PASSED), advisory]).startswith(
        "## Pipeline: passed"
    )


def test_write_summary_appends_step_summary(tmp_path: Path) -> None:
    step = tmp_path / "step.md"
    step.write_text("previous\n")
    path = report.write_summary(tmp_path, [sample()], str(step))
    assert path.read_text() in step.read_text()
    assert step.read_text().startswith("previous\n")


def test_stage_markdown_sections_are_included(tmp_path: Path) -> None:
    section = tmp_path / "bench.md"
    section.write_text("### Benchmarks\n\n| bench | change |\n|---|---|\n| a | +1% |\n")
    bench = StageResult("bench", Status.PASSED, 1, 180, artifacts={"markdown": str(section)})
    md = report.markdown([sample(status=Status.PASSED), bench])
    assert md.index("| bench | PASS |") < md.index("### Benchmarks") < md.index("| a | +1% |")
    gone = StageResult("bench", Status.PASSED, 1, 180, artifacts={"markdown": "/nonexistent"})
    assert "Benchmarks" not in report.markdown([gone])
