"""unit: library and binary tests with cargo-nextest (JUnit report), then doc tests
with `cargo test --doc` (nextest cannot run doc tests)."""

from __future__ import annotations

from ci.cargo import count, has_lib, metadata, nextest, test_findings
from ci.parsers import parse_doctest_output
from ci.result import Finding, StageResult, Status
from ci.stage import Clock, StageContext


def run(ctx: StageContext) -> StageResult:
    """Run lib/bin tests and doc tests; any failing test fails the stage."""
    meta = metadata(ctx)
    clock = Clock()
    artifacts: dict[str, str] = {}

    with ctx.runner.group("lib and bin tests (nextest)"), clock.check("tests") as chk:
        run_ = nextest(ctx, ["--lib", "--bins", "--no-tests=pass"])
        if run_.junit:
            artifacts["junit"] = str(run_.junit)
        findings = test_findings("tests", run_.cases)
        chk.summary = count(run_.cases)
        if run_.returncode != 0:
            chk.status = Status.FAILED
            if not findings:  # build failure: no test ran
                findings = [Finding("tests", _cause(run_.output) or "cargo nextest failed")]
                chk.summary = findings[0].message
        clock.findings += findings

    with ctx.runner.group("doc tests"), clock.check("doctests") as chk:
        if not has_lib(meta):
            chk.status = Status.SKIPPED
            chk.summary = "skipped: no library target, so no doc tests"
        else:
            res = ctx.cargo(["test", "--workspace", "--doc"])
            failed, passed_n, failed_n = parse_doctest_output(res.output)
            chk.summary = f"{passed_n} passed, {failed_n} failed"
            if not res.ok:
                chk.status = Status.FAILED
                found = [Finding("doctests", f"doc test failed: {name}") for name in failed]
                if not found:
                    found = [Finding("doctests", _cause(res.output) or "cargo test --doc failed")]
                clock.findings += found

    ran = [c for c in clock.checks if c.status is not Status.SKIPPED]
    return StageResult(
        stage=ctx.name,
        status=clock.status() if ran else Status.SKIPPED,
        duration_s=0.0,
        budget_s=0.0,
        summary="; ".join(f"{c.name}: {c.summary}" for c in clock.checks),
        findings=clock.findings,
        checks=clock.checks,
        artifacts=artifacts,
    )


def _cause(output: str) -> str:
    """The first `error...` line of a failed build, for the one-line reason."""
    for line in output.splitlines():
        stripped = line.strip()
        if stripped.startswith("error") and "test run failed" not in stripped:
            return stripped
    return ""
