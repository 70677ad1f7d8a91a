"""The coverage reports against golden files: the terminal table and the markdown
section (`summary.md`, step summary, PR comment)."""

from __future__ import annotations

import os
from pathlib import Path

from ci.coverage.cobertura import CoverageReport, FileCoverage
from ci.coverage.diff import DiffCoverage
from ci.coverage.gates import (
    REVIEW_REQUIRED,
    BaselineFigures,
    critical_gate,
    diff_gate,
    drop_gate,
    total_gate,
)
from ci.coverage.report import Outcome, markdown, table
from ci.coverage.steps import figures

DATA = Path(__file__).parent / "data" / "coverage"
UPDATE = os.environ.get("CIPIPE_TEST_UPDATE_GOLDEN") == "1"  # regenerate after a reviewed change


def golden(name: str, text: str) -> None:
    path = DATA / name
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs (CIPIPE_TEST_UPDATE_GOLDEN=1 to update)"


def lines(covered: int, missed: int) -> dict[int, int]:
    return {i + 1: (1 if i < covered else 0) for i in range(covered + missed)}


REPORT = CoverageReport(
    {
        "crates/core/src/engine.rs": FileCoverage("crates/core/src/engine.rs", lines(60, 0)),
        "crates/svc/src/db.rs": FileCoverage("crates/svc/src/db.rs", lines(150, 50)),
        "crates/svc/src/api.rs": FileCoverage("crates/svc/src/api.rs", lines(200, 10)),
        "crates/svc/src/main.rs": FileCoverage("crates/svc/src/main.rs", lines(0, 30)),
    }
)
BASELINE = BaselineFigures(
    "b" * 40,
    "merge base with main",
    85.0,
    {
        "crates/svc/src/db.rs": 80.0,
        "crates/svc/src/api.rs": 95.238,
        "crates/core/src/engine.rs": 100.0,
    },
)
DIFF = DiffCoverage(
    12, {"crates/svc/src/api.rs": (201, 202)}, {"crates/svc/src/db.rs": (151, 152, 160)}
)


def outcome(on_drop: str = "warn", critical: tuple[str, ...] = ("crates/core/src/*",)) -> Outcome:
    gates = [
        total_gate(REPORT, 80),
        critical_gate(REPORT, critical),
        drop_gate(REPORT, BASELINE, 2, on_drop),
        diff_gate(DIFF, 0),
    ]
    return Outcome(REPORT, gates, BASELINE, DIFF)


def test_figures_of_the_example() -> None:
    assert (REPORT.covered, REPORT.coverable) == (410, 500)  # 82%: 3 points under 85
    assert outcome().verdict == REVIEW_REQUIRED


def test_markdown_review_required() -> None:
    golden("summary-review.md", markdown(outcome(), minimum=80))


def test_markdown_failed_critical_path() -> None:
    text = markdown(outcome(critical=("crates/svc/src/api.rs", "crates/gone.rs")), minimum=80)
    golden("summary-failed.md", text)
    assert outcome(critical=("crates/svc/src/api.rs",)).verdict == "failed"


def test_terminal_table_sorted_by_uncovered_lines() -> None:
    golden("table.txt", table(outcome(), rows=2) + "\n")


def test_figures_json_holds_verdict_files_baseline_and_diff() -> None:
    data = figures(outcome())
    assert data["verdict"] == REVIEW_REQUIRED
    assert data["total"] == {"percent": 82.0, "covered": 410, "coverable": 500}
    assert [f["path"] for f in data["files"]][:2] == [
        "crates/svc/src/db.rs",
        "crates/svc/src/main.rs",
    ]
    assert data["baseline"] == {"commit": "b" * 40, "how": "merge base with main", "percent": 85.0}
    assert data["diff"] == {
        "percent": 40.0,
        "coverable": 5,
        "uncovered": {"crates/svc/src/db.rs": [151, 152, 160]},
    }
