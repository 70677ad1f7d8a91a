"""The Cobertura parser on tarpaulin's real output (golden file) and on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci.coverage.cobertura import parse, percent, read, show
from ci.coverage.errors import ReportError

DATA = Path(__file__).parent / "data" / "coverage"


def test_tarpaulin_report_figures_from_the_lines() -> None:
    report = read(DATA / "tarpaulin-cobertura.xml", root=Path("/ws"))
    assert sorted(report.files) == ["src/lib.rs", "src/risk.rs"]
    risk = report.files["src/risk.rs"]
    assert (risk.covered, risk.coverable, risk.uncovered) == (47, 48, [104])
    assert show(risk.percent) == "97.91%"
    assert (report.covered, report.coverable) == (49, 50)
    assert report.percent == 98.0
    assert [f.path for f in report.by_uncovered()] == ["src/risk.rs", "src/lib.rs"]


def test_the_line_rate_attribute_is_never_trusted() -> None:
    text = """<coverage line-rate="1.0" lines-covered="2" lines-valid="2">
      <sources><source>/ws</source></sources>
      <packages><package name="src"><classes>
        <class name="a" filename="src/a.rs" line-rate="1.0"><lines>
          <line number="1" hits="1"/><line number="2" hits="0"/>
        </lines></class>
      </classes></package></packages></coverage>"""
    report = parse(text, root=Path("/ws"))
    assert report.percent == 50.0


def test_classes_of_one_file_merge_and_absolute_paths_become_relative() -> None:
    text = """<?xml version="1.0" ?>
    <coverage><packages><package name="p"><classes>
      <class name="A" filename="/ws/crates/x/src/lib.rs"><lines>
        <line number="3" hits="0"/><line number="4" hits="2" branch="true"/>
      </lines></class>
      <class name="B" filename="/ws/crates/x/src/lib.rs"><lines>
        <line number="3" hits="5"/><line number="9" hits="0"/>
      </lines></class>
      <class name="C" filename="/elsewhere/gen.rs"><lines>
        <line number="1" hits="1"/>
      </lines></class>
    </classes></package></packages></coverage>"""
    report = parse(text, root=Path("/ws"))
    lib = report.files["crates/x/src/lib.rs"]
    assert dict(lib.lines) == {3: 5, 4: 2, 9: 0}
    assert lib.uncovered == [9]
    assert "/elsewhere/gen.rs" in report.files  # outside the workspace: kept as is


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty: the coverage run wrote no report"),
        ("  \n\t\n", "is empty"),
        ("<coverage><packages>", "is not valid XML"),
        ("not xml at all", "is not valid XML"),
        ("<testsuites/>", "is not a Cobertura report: its root element is <testsuites>"),
        ("<coverage/>", "has no coverable lines"),
        (
            '<coverage><packages><package><classes><class filename="a.rs"><lines/>'
            "</class></classes></package></packages></coverage>",
            "has no coverable lines",
        ),
        (
            '<coverage><packages><package><classes><class filename="a.rs"><lines>'
            '<line number="x" hits="1"/></lines></class></classes></package></packages></coverage>',
            "line number 'x' is not a whole number",
        ),
        (
            '<coverage><packages><package><classes><class filename="a.rs"><lines>'
            '<line number="3"/></lines></class></classes></package></packages></coverage>',
            "line 3 of a.rs has no hits attribute",
        ),
        (
            "<coverage><packages><package><classes><class><lines>"
            '<line number="3" hits="1"/></lines></class></classes></package></packages></coverage>',
            "a <class> has no filename attribute",
        ),
    ],
)
def test_bad_reports_are_one_line_naming_the_file(text: str, message: str) -> None:
    with pytest.raises(ReportError) as err:
        parse(text, source="out/cobertura.xml")
    line = str(err.value)
    assert "\n" not in line
    assert line.startswith("out/cobertura.xml")
    assert message in line
    assert err.value.exit_code == 20


def test_a_missing_report(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="does not exist: no coverage report to read"):
        read(tmp_path / "cobertura.xml")


def test_percentages_show_rounded_down() -> None:
    assert show(79.996) == "79.99%"
    assert show(80.0) == "80.00%"
    assert show(100.0) == "100.00%"
    assert show(percent(2, 3)) == "66.66%"
    assert percent(0, 0) == 100.0  # nothing to cover
