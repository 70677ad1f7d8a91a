"""Parsers of the tools' machine-readable output into findings. Pure functions: they
take text and return data, so they are tested on golden samples without running cargo."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci.result import Finding

_FMT_DIFF = re.compile(r"^Diff in (?P<file>.+?)(?::(?P<line>\d+):| at line (?P<line2>\d+):)\s*$")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\x1b\(B")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def relpath(path: str, base: Path) -> str:
    """`path` relative to `base` when it lies below it, else unchanged."""
    try:
        return str(Path(path).resolve().relative_to(base.resolve()))
    except ValueError:
        return path


def parse_fmt_check(output: str, workspace: Path) -> list[Finding]:
    """Findings from `cargo fmt --check` output: one per file that needs formatting,
    at the first differing line."""
    seen: dict[str, int | None] = {}
    for raw in strip_ansi(output).splitlines():
        m = _FMT_DIFF.match(raw.strip())
        if not m:
            continue
        file = relpath(m["file"], workspace)
        line = m["line"] or m["line2"]
        seen.setdefault(file, int(line) if line else None)
    return [
        Finding(
            check="fmt",
            message="not formatted (run `invoke fmt` or `cargo fmt --all`)",
            rule="rustfmt",
            file=file,
            line=line,
        )
        for file, line in seen.items()
    ]


@dataclass(frozen=True)
class Diagnostic:
    """A compiler/clippy diagnostic from cargo's JSON messages."""

    level: str
    message: str
    code: str | None
    file: str | None
    line: int | None
    rendered: str


def json_lines(text: str) -> Iterator[dict[str, Any]]:
    """The JSON objects of a line-delimited stream, skipping anything else (progress
    text, partial lines), as cargo and cargo-deny print them."""
    for raw in text.splitlines():
        raw = raw.strip()
        if not raw.startswith("{"):
            continue
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if isinstance(obj, dict):
            yield obj


def parse_cargo_messages(stdout: str) -> list[Diagnostic]:
    """Diagnostics from `cargo ... --message-format=json` output. Summary lines such
    as "aborting due to N previous errors" (no code, no span) are dropped; duplicates
    (the same diagnostic reported for lib and lib-test) are reported once."""
    result: list[Diagnostic] = []
    seen: set[tuple[str, str | None, int | None, str]] = set()
    for msg in json_lines(stdout):
        if msg.get("reason") != "compiler-message":
            continue
        diag = msg.get("message") or {}
        level = diag.get("level", "")
        if level not in ("error", "warning"):
            continue
        spans = diag.get("spans") or []
        code = (diag.get("code") or {}).get("code")
        if not spans and not code:
            continue
        primary = next((s for s in spans if s.get("is_primary")), spans[0] if spans else None)
        file = primary.get("file_name") if primary else None
        line = primary.get("line_start") if primary else None
        key = (diag.get("message", ""), file, line, level)
        if key in seen:
            continue
        seen.add(key)
        result.append(
            Diagnostic(
                level=level,
                message=diag.get("message", ""),
                code=code,
                file=file,
                line=line,
                rendered=diag.get("rendered") or diag.get("message", ""),
            )
        )
    return result


@dataclass(frozen=True)
class TestCase:
    """One test case of a JUnit report."""

    suite: str
    name: str
    status: str  # passed | failed | skipped
    message: str = ""
    time_s: float = 0.0


def parse_junit(xml_text: str) -> list[TestCase]:
    """Test cases from a JUnit XML report (nextest's Jenkins flavour or similar)."""
    root = ET.fromstring(xml_text)
    cases: list[TestCase] = []
    for suite in root.iter("testsuite"):
        suite_name = suite.get("name", "")
        for case in suite.iter("testcase"):
            status, message = "passed", ""
            for tag in ("failure", "error"):
                node = case.find(tag)
                if node is not None:
                    status = "failed"
                    message = _panic_message(node.text or "", node.get("message") or "")
                    break
            else:
                if case.find("skipped") is not None:
                    status = "skipped"
            cases.append(
                TestCase(
                    suite=case.get("classname") or suite_name,
                    name=case.get("name", ""),
                    status=status,
                    message=message,
                    time_s=float(case.get("time") or 0),
                )
            )
    return cases


def _panic_message(body: str, fallback: str) -> str:
    """The line after "panicked at file:line:", i.e. the assertion text; for a
    proptest failure, its reason and the shrunk minimal failing input."""
    lines = [line.strip() for line in body.splitlines()]
    for i, line in enumerate(lines):
        if "panicked at" in line and i + 1 < len(lines) and lines[i + 1]:
            where = line.split("panicked at", 1)[1].strip().rstrip(":")
            if lines[i + 1].startswith(_PROPTEST_FAILED):
                return _proptest_message(lines[i + 1 :], where)
            return f"{lines[i + 1]} (at {where})"
    return fallback.strip() or (lines[0] if lines else "")


_PROPTEST_FAILED = "Test failed: "
_PROPTEST_INPUT = "minimal failing input: "
# proptest appends the location of the failed prop_assert! to the reason.
_PROPTEST_REASON = re.compile(r"^(?P<why>.*) at (?P<where>\S+:\d+)\.?$")
# Where the input ends: proptest's run statistics, a blank line, the backtrace.
_PROPTEST_INPUT_END = re.compile(
    r"^(successes|local rejects|global rejects): |^$|^stack backtrace:"
)
MAX_INPUT_CHARS = 600


def _proptest_message(lines: list[str], where: str) -> str:
    """`reason (at file:line); minimal failing input: <value>` from proptest's panic
    text ("Test failed: <reason> at <file:line>.", then "minimal failing input:" and
    the shrunk value pretty-printed over many lines), the value compacted to one line
    and cut at MAX_INPUT_CHARS (the whole of it is in the JUnit report)."""
    start = next((k for k, line in enumerate(lines) if line.startswith(_PROPTEST_INPUT)), None)
    if start is None:
        return f"{' '.join(lines[:1])} (at {where})"
    reason = " ".join(x for x in lines[:start] if x)[len(_PROPTEST_FAILED) :]
    m = _PROPTEST_REASON.match(reason)
    if m:
        reason, where = m["why"], m["where"]
    value: list[str] = [lines[start][len(_PROPTEST_INPUT) :]]
    for line in lines[start + 1 :]:
        if _PROPTEST_INPUT_END.match(line):
            break
        value.append(line)
    shrunk = compact_debug(" ".join(value))
    if len(shrunk) > MAX_INPUT_CHARS:
        shrunk = shrunk[:MAX_INPUT_CHARS].rstrip() + " ... (cut; whole input in junit.xml)"
    return f"{reason} (at {where}); minimal failing input: {shrunk}"


_OPEN_SPACE = re.compile(r"([\[(]) +")
_COMMA_CLOSE = re.compile(r",? +([\])])")
_COMMA_BRACE = re.compile(r", +}")


def compact_debug(text: str) -> str:
    """Rust's pretty `{:#?}` output joined onto one line, back in the shape of plain
    `{:?}`: `[ Order { side: Sell, }, ]` becomes `[Order { side: Sell }]`."""
    text = _OPEN_SPACE.sub(r"\1", text)
    text = _COMMA_CLOSE.sub(r"\1", text)
    return _COMMA_BRACE.sub(" }", text)


_DOCTEST_FAIL = re.compile(r"^---- (?P<name>.+?) stdout ----$")
_DOCTEST_SUMMARY = re.compile(
    r"^test result: (?:ok|FAILED)\. (?P<passed>\d+) passed; (?P<failed>\d+) failed"
)


def parse_doctest_output(output: str) -> tuple[list[str], int, int]:
    """(failed doc test names, passed count, failed count) from `cargo test --doc` output."""
    failed: list[str] = []
    passed_n = failed_n = 0
    for raw in strip_ansi(output).splitlines():
        line = raw.strip()
        m = _DOCTEST_FAIL.match(line)
        if m and m["name"] not in failed:
            failed.append(m["name"])
        s = _DOCTEST_SUMMARY.match(line)
        if s:
            passed_n += int(s["passed"])
            failed_n += int(s["failed"])
    return failed, passed_n, failed_n


_RUNNING = re.compile(r"^\s*Running (?:unittests |tests/)?\S*\s*\((?P<path>[^)]+)\)\s*$")
_RUNNING_BARE = re.compile(r"^\s*Running (?P<path>\S+)\s*$")
_DOC_TESTS = re.compile(r"^\s*Doc-tests (?P<crate>\S+)\s*$")
_LIBTEST_CASE = re.compile(
    r"^test (?P<name>.+?)(?: - should panic)? \.\.\. (?P<status>ok|FAILED|ignored)"
)
_FAIL_HEAD = re.compile(r"^---- (?P<name>.+?) stdout ----$")


def _suite_of(path: str) -> str:
    """`…/deps/trading_core-1a2b3c` → `trading_core` (the test binary's crate target)."""
    name = Path(path).name
    stem, _, tail = name.rpartition("-")
    return stem if stem and tail.isalnum() and len(tail) >= 8 else name


def parse_libtest(output: str) -> list[TestCase]:
    """Test cases from `cargo test` (libtest's stable human output, stderr merged into
    stdout so each "Running <binary>" line precedes its tests). A failed test's message
    is its panic (`---- name stdout ----` section)."""
    cases: list[TestCase] = []
    suite = ""
    failures: dict[tuple[str, str], str] = {}
    section: tuple[str, str] | None = None
    body: list[str] = []

    def close() -> None:
        if section is not None:
            failures[section] = "\n".join(body)

    for raw in strip_ansi(output).splitlines():
        line = raw.rstrip()
        m = _RUNNING.match(line) or _RUNNING_BARE.match(line)
        if m and "/" in m["path"]:
            close()
            section, body = None, []
            suite = _suite_of(m["path"])
            continue
        d = _DOC_TESTS.match(line)
        if d:
            close()
            section, body = None, []
            suite = f"doc:{d['crate']}"
            continue
        m = _LIBTEST_CASE.match(line)
        if m:
            status = {"ok": "passed", "FAILED": "failed", "ignored": "skipped"}[m["status"]]
            cases.append(TestCase(suite=suite, name=m["name"], status=status))
            continue
        m = _FAIL_HEAD.match(line)
        if m:
            close()
            section, body = (suite, m["name"]), []
            continue
        if section is not None:
            if line.startswith(("failures:", "test result:")):
                close()
                section, body = None, []
            else:
                body.append(line)
    close()
    return [
        TestCase(c.suite, c.name, c.status, _panic_message(failures.get((c.suite, c.name), ""), ""))
        if c.status == "failed"
        else c
        for c in cases
    ]


def junit_xml(cases: list[TestCase], name: str = "cargo-test") -> str:
    """A JUnit report (one testsuite per test binary) for runners without one."""
    root = ET.Element("testsuites", name=name, tests=str(len(cases)))
    root.set("failures", str(sum(c.status == "failed" for c in cases)))
    suites: dict[str, ET.Element] = {}
    for case in cases:
        suite = suites.get(case.suite)
        if suite is None:
            suite = ET.SubElement(root, "testsuite", name=case.suite)
            suites[case.suite] = suite
        node = ET.SubElement(
            suite, "testcase", name=case.name, classname=case.suite, time=f"{case.time_s:.3f}"
        )
        if case.status == "failed":
            failure = ET.SubElement(node, "failure", message=case.message[:500])
            failure.text = case.message
        elif case.status == "skipped":
            ET.SubElement(node, "skipped")
    for suite_name, suite in suites.items():
        members = [c for c in cases if c.suite == suite_name]
        suite.set("tests", str(len(members)))
        suite.set("failures", str(sum(c.status == "failed" for c in members)))
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")
