"""The coverage gates at and around their limits."""

from __future__ import annotations

import pytest

from ci.coverage.cobertura import CoverageReport, FileCoverage
from ci.coverage.diff import DiffCoverage
from ci.coverage.gates import (
    REVIEW_REQUIRED,
    BaselineFigures,
    critical_gate,
    diff_gate,
    drop_gate,
    matches,
    total_gate,
)
from ci.result import Status


def lines(covered: int, missed: int, start: int = 1) -> dict[int, int]:
    return {start + i: (1 if i < covered else 0) for i in range(covered + missed)}


def report(files: dict[str, dict[int, int]]) -> CoverageReport:
    return CoverageReport({p: FileCoverage(p, v) for p, v in files.items()})


def test_total_at_the_minimum_passes_just_below_fails_with_the_figure() -> None:
    gate = total_gate(report({"a.rs": lines(80, 20)}), 80)
    assert gate.status is Status.PASSED
    assert gate.summary == "80.00% (80 of 100 lines), minimum 80%"
    gate = total_gate(report({"a.rs": lines(7, 7)}), 80)
    assert gate.status is Status.FAILED
    [finding] = gate.findings
    assert finding.message == (
        "line coverage 50.00% is below the minimum of 80% (7 of 14 lines covered; "
        "5 more must be tested)"
    )
    assert finding.rule == "min-total" and finding.severity == "error"


def test_a_figure_that_would_round_up_to_the_minimum_still_fails() -> None:
    gate = total_gate(report({"a.rs": lines(7999, 2001)}), 80)  # 79.99%
    assert gate.status is Status.FAILED
    assert "79.99%" in gate.summary and "1 more must be tested" in gate.findings[0].message


def test_critical_paths_list_every_uncovered_line_by_file() -> None:
    cov = report(
        {
            "src/risk/limits.rs": lines(98, 0),
            "src/engine.rs": {**lines(97, 0, start=100), 40: 0, 41: 0, 60: 0},
            "src/other.rs": lines(1, 9),
        }
    )
    gate = critical_gate(cov, ["src/risk/*", "src/engine.rs"])
    assert gate.status is Status.FAILED
    assert gate.summary == "1 of 2 critical files below 100% (3 lines)"
    [f] = gate.findings
    assert (f.file, f.line, f.rule) == ("src/engine.rs", 40, "critical-path")
    assert f.message == (
        "critical path at 97.00%, must be 100%: lines 40-41, 60 not executed by any test"
    )


def test_critical_paths_fully_covered_pass_and_none_configured_skip() -> None:
    cov = report({"src/engine.rs": lines(10, 0), "src/other.rs": lines(1, 9)})
    assert critical_gate(cov, ["src/engine.rs"]).status is Status.PASSED
    assert critical_gate(cov, ["src/engine.rs"]).summary == "1 critical file at 100%"
    skipped = critical_gate(cov, [])
    assert skipped.status is Status.SKIPPED and skipped.summary.startswith("skipped: ")


def test_a_critical_glob_matching_nothing_fails_instead_of_passing_vacuously() -> None:
    gate = critical_gate(report({"src/engine.rs": lines(10, 0)}), ["src/enigne.rs"])
    assert gate.status is Status.FAILED
    assert gate.summary == "1 of 1 critical path match no file"
    assert "'src/enigne.rs' matches no file of the coverage report" in gate.findings[0].message


def test_globs_match_like_tarpaulin_exclude_files() -> None:
    assert matches("crates/core/src/risk.rs", "crates/*/src/risk.rs")
    assert matches("crates/core/src/risk/limits.rs", "crates/core/src/risk/*")
    assert matches("crates/core/src/risk/deep/x.rs", "*/risk/*")  # `*` also matches `/`
    assert not matches("crates/core/src/risky.rs", "crates/core/src/risk.rs")


BASE = "a" * 40


def baseline(total: float) -> BaselineFigures:
    return BaselineFigures(BASE, "merge base with main", total, {})


def test_three_points_below_the_baseline_is_review_required() -> None:
    cov = report({"a.rs": lines(80, 20)})
    warn = drop_gate(cov, baseline(83.0), 2, "warn")
    assert warn.verdict == REVIEW_REQUIRED
    assert warn.status is Status.PASSED  # flagged, not blocking
    assert warn.summary.startswith("REVIEW REQUIRED: ")
    [finding] = warn.findings
    assert finding.severity == "warning" and finding.rule == REVIEW_REQUIRED
    assert finding.message.startswith(
        "line coverage fell 3.00 points, from 83.00% to 80.00% (allowed: 2)"
    )
    assert "aaaaaaaaaaaa (merge base with main)" in finding.message
    fail = drop_gate(cov, baseline(83.0), 2, "fail")
    assert fail.status is Status.FAILED and fail.verdict == REVIEW_REQUIRED
    assert fail.findings[0].severity == "error"


@pytest.mark.parametrize(("before", "shown"), [(81.0, "-1.00"), (82.0, "-2.00"), (80.0, "±0.00")])
def test_a_drop_up_to_the_limit_passes_and_shows_the_delta(before: float, shown: str) -> None:
    gate = drop_gate(report({"a.rs": lines(80, 20)}), baseline(before), 2, "fail")
    assert gate.status is Status.PASSED and not gate.verdict and not gate.findings
    assert gate.summary.startswith(f"{shown} points vs baseline")


def test_the_limit_is_not_tripped_by_float_noise() -> None:
    # 247/300 = 82.333..%, baseline 84.333..%: exactly 2 points
    gate = drop_gate(report({"a.rs": lines(247, 53)}), baseline(253 / 300 * 100), 2, "fail")
    assert gate.status is Status.PASSED


def test_no_baseline_is_said_and_never_fails() -> None:
    gate = drop_gate(
        report({"a.rs": lines(1, 1)}), None, 2, "fail", "no baseline yet: nothing recorded"
    )
    assert gate.status is Status.SKIPPED
    assert gate.summary == "skipped: no baseline yet: nothing recorded"


def test_diff_coverage_lists_uncovered_changed_lines_and_enforces_a_minimum() -> None:
    dc = DiffCoverage(5, {"src/a.rs": (1, 2)}, {"src/a.rs": (3, 4), "src/b.rs": (9,)})
    listed = diff_gate(dc, 0)
    assert listed.status is Status.PASSED
    assert listed.summary == "40.00% of 5 changed lines covered (3 not)"
    assert [(f.file, f.line, f.severity, f.message) for f in listed.findings] == [
        ("src/a.rs", 3, "warning", "changed lines 3-4 not executed by any test"),
        ("src/b.rs", 9, "warning", "changed line 9 not executed by any test"),
    ]
    enforced = diff_gate(dc, 50)
    assert enforced.status is Status.FAILED
    assert enforced.summary.endswith(", minimum 50%: below the minimum")
    assert {f.severity for f in enforced.findings} == {"error"}
    assert diff_gate(dc, 40).status is Status.PASSED


def test_diff_coverage_without_base_or_coverable_change() -> None:
    assert diff_gate(None, 90, "no base").status is Status.SKIPPED
    nothing = diff_gate(DiffCoverage(3, {}, {}), 90)
    assert nothing.status is Status.PASSED
    assert nothing.summary.startswith("no coverable line changed")
