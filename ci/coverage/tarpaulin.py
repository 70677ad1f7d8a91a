"""How `cargo tarpaulin` is called, and what its output says about failing tests and
build errors. Building the command and reading the output are pure functions."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ci.coverage.config import TARPAULIN_ENGINE, CoverageConfig
from ci.parsers import strip_ansi

COBERTURA = "cobertura.xml"
HTML = "tarpaulin-report.html"

# libtest's line per test; a line without its verdict means the binary died in that test.
_TEST = re.compile(r"^test (?P<name>\S+)(?: - should panic)? \.\.\. ?(?P<verdict>.*)$")
DIED = "the test binary died while this test ran (crash, signal or timeout under coverage)"
_SECTION = re.compile(r"^---- (?P<name>\S+) stdout ----\s*$")
_PANIC = re.compile(r"^thread '.*' (?:\(\d+\) )?panicked at (?P<where>\S+):\s*$")
_HASH = re.compile(r"-[0-9a-f]{16}$")  # cargo's metadata hash on test binary names
_RUNNING = re.compile(
    r"\bINFO cargo_tarpaulin::process_handling: running (?P<exe>\S+)"
    # cargo's own line, as `cargo llvm-cov` (cargo test) prints it
    r"|^\s*Running (?:unittests )?\S+ \((?P<cargo_exe>[^)]+)\)"
)
_LOG = re.compile(r"^\S+Z\s+(?P<level>ERROR|WARN)\s+cargo_tarpaulin\S*: (?P<msg>.+)$")


def command(
    exe: str,
    cfg: CoverageConfig,
    *,
    target_dir: Path,
    output_dir: Path,
    extra: Sequence[str] = (),
) -> list[str]:
    """`cargo tarpaulin` over the whole workspace: every test (unit, integration, doc
    tests when enabled), all of them even after a failure, Cobertura and HTML reports in
    `output_dir`, builds in `target_dir`. `extra`: the user's own tarpaulin arguments."""
    argv = [exe, "tarpaulin", "--workspace", "--engine", TARPAULIN_ENGINE[cfg.engine]]
    argv += ["--out", "Xml", "--out", "Html", "--output-dir", str(output_dir)]
    argv += ["--target-dir", str(target_dir), "--skip-clean", "--no-fail-fast"]
    argv += ["--timeout", str(round(cfg.test_timeout)), "--color", "Never"]
    argv += ["--run-types", "Tests"]
    if cfg.doctests:
        argv += ["--run-types", "Doctests"]
    if cfg.follow_exec:
        argv.append("--follow-exec")
    for pattern in cfg.exclude_files:
        argv += ["--exclude-files", pattern]
    return [*argv, *extra]


def environment(cfg: CoverageConfig, target_dir: Path) -> dict[str, str]:
    """What tarpaulin's cargo needs beyond the stage's cargo environment: its own target
    dir (the normal build cache stays valid) and, for doc tests on a stable toolchain,
    RUSTC_BOOTSTRAP=1 (rustdoc's --persist-doctests is unstable; tarpaulin asks for it)."""
    env = {"CARGO_TARGET_DIR": str(target_dir)}
    if cfg.doctests:
        env["RUSTC_BOOTSTRAP"] = "1"
    return env


@dataclass(frozen=True)
class FailedTest:
    """A test that failed under coverage: its name, the test binary, the panic."""

    name: str
    binary: str
    message: str


def failed_tests(output: str) -> list[FailedTest]:
    """The failing tests in tarpaulin's output (libtest's `test x ... FAILED` lines),
    each with the first line of its panic message when the output has one."""
    binary = ""
    failed: dict[str, FailedTest] = {}
    messages: dict[str, str] = {}
    section = ""
    lines = strip_ansi(output).splitlines()
    for i, line in enumerate(lines):
        running = _RUNNING.search(line)
        if running:
            binary = _HASH.sub("", Path(running["exe"] or running["cargo_exe"]).name)
            continue
        match = _TEST.match(line)
        if match:
            verdict = match["verdict"].strip()
            if verdict == "FAILED":
                failed.setdefault(match["name"], FailedTest(match["name"], binary, ""))
            elif not verdict.startswith(("ok", "ignored")):
                failed.setdefault(match["name"], FailedTest(match["name"], binary, DIED))
            continue
        match = _SECTION.match(line)
        if match:
            section = match["name"]
            continue
        panic = _PANIC.match(line)
        if panic and section and section not in messages:
            detail = lines[i + 1].strip() if i + 1 < len(lines) else ""
            messages[section] = f"{detail} ({panic['where']})" if detail else panic["where"]
    return [FailedTest(t.name, t.binary, messages.get(t.name, t.message)) for t in failed.values()]


def first_error(output: str) -> str:
    """The line that best explains a tarpaulin run that produced no report: cargo's
    first `error...` line, else tarpaulin's own first ERROR, else its final `Error:`."""
    clean = strip_ansi(output).splitlines()
    for i, line in enumerate(clean):
        stripped = line.strip()
        if stripped.startswith("error") and "could not compile" not in stripped:
            after = clean[i + 1].strip() if i + 1 < len(clean) else ""
            return f"{stripped} ({after[3:].strip()})" if after.startswith("-->") else stripped
    for line in clean:
        match = _LOG.match(line.strip())
        if match and match["level"] == "ERROR":
            return match["msg"].strip()
    for line in reversed(clean):
        if line.startswith("Error:"):
            return line[len("Error:") :].strip().strip('"')
    return ""


_RESULT = re.compile(r"^test result: \w+\. (?P<passed>\d+) passed; (?P<failed>\d+) failed")


@dataclass(frozen=True)
class Counts:
    """Tests run under coverage: libtest's totals, plus doc tests (one binary each)."""

    passed: int = 0
    failed: int = 0
    doctests: int = 0

    def __str__(self) -> str:
        doc = f", {self.doctests} doc tests" if self.doctests else ""
        return f"{self.passed} passed, {self.failed} failed{doc}"


def counts(output: str) -> Counts:
    """The totals of every `test result:` line, and how many doc test binaries ran."""
    passed = failed = doc = 0
    for line in strip_ansi(output).splitlines():
        match = _RESULT.match(line.strip())
        if match:
            passed += int(match["passed"])
            failed += int(match["failed"])
            continue
        running = _RUNNING.search(line)
        if running and "/doctests/" in (running["exe"] or ""):
            doc += 1
    return Counts(passed, failed, doc)
