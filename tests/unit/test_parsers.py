from __future__ import annotations

from pathlib import Path

from ci.parsers import (
    MAX_INPUT_CHARS,
    compact_debug,
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


def test_junit_proptest_failure_keeps_shrunk_input() -> None:
    cases = parse_junit((DATA / "nextest-junit-proptest.xml").read_text())
    by_name = {c.name: c for c in cases}
    assert by_name["tests::better_priced_buy_trades"].status == "passed"
    crossed = by_name["tests::book_is_never_crossed"]
    assert crossed.status == "failed"
    # The reason, where the prop_assert! failed (not the proptest! macro), and the
    # shrunk case on one line as plain Debug prints it.
    assert crossed.message == (
        "crossed book: best bid 2 >= best ask 2 (at src/lib.rs:112); minimal failing input: "
        "orders = [Order { side: Sell, price: 2, qty: 1 }, Order { side: Buy, price: 2, qty: 1 }]"
    )
    multi = by_name["props::book::fills_follow_price_time_priority"].message
    assert multi.startswith("assertion failed: `(left == right)` left: `[(1, 95, 1, 0), (2, 95")
    assert "(at crates/trading-core/src/props/book.rs:163); minimal failing input: ops = [" in multi
    assert multi.endswith(
        "ops = [Limit { side: Sell, price: 95, qty: 1 }, Cancel { target: Index(0) }, "
        "Limit { side: Buy, price: 97, qty: 3 }]"
    )


def test_proptest_input_is_cut_when_long() -> None:
    ops = "\n".join(["    Limit {", "        qty: 1,", "    },"] * 200)
    body = (
        "thread 't' panicked at src/lib.rs:5:1:\nTest failed: boom at src/lib.rs:9.\n"
        f"minimal failing input: ops = [\n{ops}\n]\n\tsuccesses: 3\n"
    )
    xml = (
        '<testsuites><testsuite name="s"><testcase name="t" classname="c">'
        f"<failure>{body}</failure></testcase></testsuite></testsuites>"
    )
    (case,) = parse_junit(xml)
    assert case.message.startswith("boom (at src/lib.rs:9); minimal failing input: ops = [Limit")
    assert case.message.endswith("(cut; whole input in junit.xml)")
    assert len(case.message) < MAX_INPUT_CHARS + 120
    assert "successes" not in case.message


def test_proptest_abort_and_plain_panics_keep_one_line() -> None:
    body = "thread 't' panicked at src/lib.rs:5:1:\nTest aborted: Too many global rejects\n"
    xml = (
        '<testsuites><testsuite name="s"><testcase name="t" classname="c">'
        f"<failure>{body}</failure></testcase></testsuite></testsuites>"
    )
    (case,) = parse_junit(xml)
    assert case.message == "Test aborted: Too many global rejects (at src/lib.rs:5:1)"


def test_compact_debug_matches_plain_debug_shape() -> None:
    pretty = "(\n 0,\n Cancel {\n  target: Index(\n   0,\n  ),\n },\n)"
    joined = " ".join(x.strip() for x in pretty.splitlines())
    assert compact_debug(joined) == "(0, Cancel { target: Index(0) })"
    assert compact_debug("[ ]") == "[]"


def test_libtest_output_gives_cases_with_panic_messages() -> None:
    from ci.parsers import junit_xml, parse_libtest

    cases = parse_libtest((DATA / "libtest-failed.txt").read_text())
    assert [(c.suite, c.name, c.status) for c in cases] == [
        ("fixture_test_fault", "tests::adds_correctly", "passed"),
        ("fixture_test_fault", "tests::planted_failure", "failed"),
    ]
    assert cases[1].message == (
        "assertion `left == right` failed: planted fault: 2 + 2 is not 5 (at src/lib.rs:17:9)"
    )
    assert parse_junit(junit_xml(cases)) == cases  # the report we write reads back the same


def test_libtest_several_binaries_and_ignored_tests() -> None:
    from ci.parsers import parse_libtest

    text = (
        "     Running unittests src/lib.rs (/t/debug/deps/alpha-0123456789abcdef)\n\n"
        "running 2 tests\ntest a::one ... ok\ntest a::two ... ignored\n\n"
        "test result: ok. 1 passed; 0 failed; 1 ignored\n"
        "     Running unittests src/main.rs (/t/debug/deps/beta_bin-fedcba9876543210)\n\n"
        "running 1 test\ntest b::boom - should panic ... ok\n"
    )
    assert [(c.suite, c.name, c.status) for c in parse_libtest(text)] == [
        ("alpha", "a::one", "passed"),
        ("alpha", "a::two", "skipped"),
        ("beta_bin", "b::boom", "passed"),
    ]


def test_package_names_from_cargo_package_ids() -> None:
    from ci.cargo import package_name

    assert package_name("path+file:///ws/crates/trading-core#0.1.0") == "trading-core"
    assert package_name("path+file:///ws#fixture-clean@0.1.0") == "fixture-clean"
    assert (
        package_name("registry+https://github.com/rust-lang/crates.io-index#itoa@1.0.18") == "itoa"
    )
    assert (
        package_name("trading-core 0.1.0 (path+file:///ws/crates/trading-core)") == "trading-core"
    )
