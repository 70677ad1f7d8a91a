"""Changed lines from real `git diff --unified=0` output (golden file) and the coverage
of those lines."""

from __future__ import annotations

from pathlib import Path

from ci.coverage.cobertura import CoverageReport, FileCoverage
from ci.coverage.diff import changed_lines, diff_coverage, ranges

DATA = Path(__file__).parent / "data" / "coverage"


def test_changed_lines_of_a_real_diff() -> None:
    changes = changed_lines((DATA / "changes.diff").read_text())
    assert changes == {
        "src/added.rs": {1},  # a new file: every line
        "src/lib.rs": {2, 5, 6},  # a changed line and two added; the deletion adds none
        "src/new.rs": {4},  # renamed: counted under its new name
        "src/we ird.rs": {2},  # git ends such a name with a tab
        'src/q"é.rs': {1},  # C-quoted with octal UTF-8 bytes
    }  # the deleted file and the binary one contribute nothing


def test_an_empty_diff_changes_nothing() -> None:
    assert changed_lines("") == {}


def report(**files: dict[int, int]) -> CoverageReport:
    return CoverageReport({p: FileCoverage(p, lines) for p, lines in files.items()})


def test_diff_coverage_counts_only_coverable_changed_lines() -> None:
    cov = report(**{"src/lib.rs": {2: 1, 5: 0, 6: 0, 9: 0}, "src/new.rs": {4: 3}})
    changes = {"src/lib.rs": {1, 2, 5, 6}, "src/new.rs": {4}, "README.md": {1, 2}}
    dc = diff_coverage(cov, changes)
    assert dc.changed == 7
    assert dc.coverable == 4  # line 1 of lib.rs and README.md are not in the report
    assert dict(dc.uncovered) == {"src/lib.rs": (5, 6)}
    assert dict(dc.covered) == {"src/lib.rs": (2,), "src/new.rs": (4,)}
    assert dc.percent == 50.0


def test_no_coverable_change_has_no_percentage() -> None:
    dc = diff_coverage(report(**{"src/lib.rs": {3: 1}}), {"docs/x.md": {1}, "src/lib.rs": {1}})
    assert dc.coverable == 0 and dc.percent is None


def test_ranges() -> None:
    assert ranges([9, 3, 4, 5, 12, 13, 4]) == "3-5, 9, 12-13"
    assert ranges([7]) == "7"
    assert ranges([]) == ""
