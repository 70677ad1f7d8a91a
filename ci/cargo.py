"""Cargo helpers shared by the test stages: workspace metadata and nextest with JUnit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci import tools
from ci.errors import WorkspaceError
from ci.parsers import TestCase, junit_xml, parse_junit, parse_libtest
from ci.redact import mask_xml
from ci.result import Finding, Status, atomic_write
from ci.stage import Clock, StageContext

NEXTEST_PROFILE = "pipeline"


def metadata(ctx: StageContext) -> dict[str, Any]:
    """`cargo metadata --no-deps` of the workspace (fast: no dependency resolution)."""
    res = ctx.runner.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1"],
        cwd=ctx.workspace,
        env=ctx.cargo_env(),
        capture=True,
        echo_output=False,
        log_stdout=False,
    )
    if not res.ok:
        line = next((x for x in res.stderr.splitlines() if x.startswith("error")), res.stderr)
        raise WorkspaceError(f"cargo metadata failed in {ctx.workspace}: {line.strip()}")
    try:
        return json.loads(res.stdout)
    except ValueError:
        raise WorkspaceError("cargo metadata printed invalid JSON") from None


def target_kinds(meta: dict[str, Any]) -> set[str]:
    """Every target kind present in the workspace members (lib, bin, test, bench, ...)."""
    members = set(meta.get("workspace_members", []))
    kinds: set[str] = set()
    for pkg in meta.get("packages", []):
        if pkg.get("id") in members:
            for target in pkg.get("targets", []):
                kinds.update(target.get("kind", []))
    return kinds


def has_lib(meta: dict[str, Any]) -> bool:
    """True when some member has a library target (doc tests need one)."""
    return bool(target_kinds(meta) & {"lib", "rlib", "proc-macro"})


@dataclass(frozen=True)
class TestRun:
    """A nextest run: exit code, the test cases from its JUnit report, the report path."""

    returncode: int
    cases: list[TestCase]
    junit: Path | None
    output: str


def _tool_config(ctx: StageContext) -> Path:
    store = ctx.artifacts_dir / "nextest"
    path = ctx.artifacts_dir / "nextest.toml"
    path.write_text(
        "# Written by the pipeline; layered under the workspace's own .config/nextest.toml.\n"
        f"[store]\ndir = {json.dumps(str(store))}\n\n"
        f"[profile.{NEXTEST_PROFILE}]\nfail-fast = false\n\n"
        f'[profile.{NEXTEST_PROFILE}.junit]\npath = "junit.xml"\nstore-success-output = false\n',
        encoding="utf-8",
    )
    return path


def nextest(
    ctx: StageContext, selection: Sequence[str], env: dict[str, str] | None = None
) -> TestRun:
    """Run `cargo nextest run --workspace <selection>` with a JUnit report copied to
    `<artifacts>/junit.xml`. Extra posargs go to nextest."""
    config = _tool_config(ctx)
    junit_src = ctx.artifacts_dir / "nextest" / NEXTEST_PROFILE / "junit.xml"
    junit_src.unlink(missing_ok=True)
    exe, _ = tools.resolve(
        ctx.runner, "cargo-nextest", auto_install=ctx.settings.top.flag("install_tools")
    )
    args = [exe, "nextest", "run", "--workspace", *selection, "--profile", NEXTEST_PROFILE]
    args += ["--tool-config-file", f"pipeline:{config}", *ctx.posargs]
    res = ctx.runner.run(args, cwd=ctx.workspace, env={**ctx.cargo_env(), **(env or {})})
    junit: Path | None = None
    cases: list[TestCase] = []
    if junit_src.is_file():
        # Parsed raw; the copy that is kept (test output is inside it) is masked.
        junit = ctx.artifacts_dir / "junit.xml"
        text = junit_src.read_text(encoding="utf-8", errors="replace")
        cases = parse_junit(text)
        atomic_write(junit, mask_xml(text, ctx.runner.redact))
        junit_src.unlink()
    return TestRun(res.returncode, cases, junit, res.output)


def libtest(
    ctx: StageContext, selection: Sequence[str], env: dict[str, str] | None = None
) -> TestRun:
    """`cargo test --workspace <selection> --no-fail-fast`: every test binary runs its
    tests in one process (no per-test process as with nextest: much faster for many small
    tests). Results come from libtest's stable human output; the JUnit report is written
    from them. Extra posargs are test-name filters."""
    args = ["cargo", "test", "--workspace", *selection, "--no-fail-fast", "--"]
    args += ["--color", "never", *ctx.posargs]
    res = ctx.runner.run(
        args,
        cwd=ctx.workspace,
        env={**ctx.cargo_env(), **(env or {})},
        merge_stderr=True,
    )
    cases = parse_libtest(res.stdout)
    junit = ctx.artifacts_dir / "junit.xml"
    atomic_write(junit, mask_xml(junit_xml(cases), ctx.runner.redact))
    return TestRun(res.returncode, cases, junit, res.output)


def run_tests_check(
    ctx: StageContext,
    clock: Clock,
    title: str,
    selection: Sequence[str],
    artifacts: dict[str, str],
    env: dict[str, str] | None = None,
    runner: str = "nextest",
) -> None:
    """The `tests` check of a test stage: `runner` (nextest or libtest) over `selection`,
    one finding per failed test, or the build error when no test could run."""
    with ctx.runner.group(f"{title} ({runner})"), clock.check("tests") as chk:
        if runner == "libtest":
            run = libtest(ctx, [s for s in selection if s != "--no-tests=pass"], env=env)
        else:
            run = nextest(ctx, selection, env=env)
        if run.junit:
            artifacts["junit"] = str(run.junit)
        findings = test_findings("tests", run.cases)
        chk.summary = count(run.cases)
        if run.returncode != 0:
            chk.status = Status.FAILED
            if not findings:  # nothing ran: the build failed
                findings = [Finding("tests", first_error(run.output) or f"{runner} run failed")]
                chk.summary = findings[0].message
        clock.findings += findings


def first_error(output: str) -> str:
    """The first `error...` line of a failed cargo run, for the one-line reason."""
    for line in output.splitlines():
        stripped = line.strip()
        if stripped.startswith("error") and "test run failed" not in stripped:
            return stripped
    return ""


def test_findings(check: str, cases: Sequence[TestCase]) -> list[Finding]:
    """One finding per failed test, naming the crate, the test and the assertion."""
    return [
        Finding(
            check=check,
            message=f"{c.name} failed: {c.message}".rstrip(": "),
            rule="test-failure",
            crate=c.suite,
        )
        for c in cases
        if c.status == "failed"
    ]


def count(cases: Sequence[TestCase]) -> str:
    """`12 passed, 1 failed, 0 skipped`."""
    p = sum(c.status == "passed" for c in cases)
    f = sum(c.status == "failed" for c in cases)
    s = sum(c.status == "skipped" for c in cases)
    return f"{p} passed, {f} failed, {s} skipped"
