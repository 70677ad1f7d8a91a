from __future__ import annotations

from pathlib import Path

from ci.parsers import (
    parse_cargo_messages,
    parse_doctest_output,
    parse_fmt_check,
    parse_junit,
)

DATA = Path(__file__).parent / "data"


def test_fmt_check_names_file_and_line() -> None:
    findings = parse_fmt_check((DATA / "fmt-check.txt").read_text(), Path("/repo/ws"))
    assert [(f.file, f.line, f.check) for f in findings] == [("src/lib.rs", 1, "fmt")]


def test_fmt_check_old_format_and_dedup(tmp_path: Path) -> None:
    text = f"Diff in {tmp_path}/a.rs at line 3:\n-x\nDiff in {tmp_path}/a.rs at line 9:\n"
    findings = parse_fmt_check(text, tmp_path)
    assert [(f.file, f.line) for f in findings] == [("a.rs", 3)]


def test_clippy_json_dedups_lib_and_test_copies() -> None:
    diags = parse_cargo_messages((DATA / "clippy.jsonl").read_text())
    assert len(diags) == 1
    d = diags[0]
    assert d.code == "clippy::needless_return"
    assert d.file == "src/lib.rs" and d.line == 3
    assert "clippy::needless_return" in d.rendered
    assert d.rendered.startswith("error: unneeded `return` statement")


def test_cargo_messages_ignore_noise() -> None:
    text = 'not json\n{"reason":"compiler-artifact"}\n{broken\n'
    text += '{"reason":"compiler-message","message":{"level":"error","message":"aborting",'
    text += '"spans":[],"code":null}}\n'
    assert parse_cargo_messages(text) == []


def test_junit_failed_case_has_assertion_text() -> None:
    cases = parse_junit((DATA / "nextest-junit.xml").read_text())
    by_name = {c.name: c for c in cases}
    assert by_name["tests::adds_correctly"].status == "passed"
    failed = by_name["tests::planted_failure"]
    assert failed.status == "failed"
    assert failed.suite == "fixture-test-fault"
    assert "planted fault: 2 + 2 is not 5" in failed.message
    assert "src/lib.rs:17:9" in failed.message


def test_doctest_output() -> None:
    failed, passed, failed_n = parse_doctest_output((DATA / "doctest-failed.txt").read_text())
    assert failed == ["src/lib.rs - add (line 3)"]
    assert (passed, failed_n) == (0, 1)
