"""unit: library and binary tests with cargo-nextest (JUnit report), then doc tests
with `cargo test --doc` (nextest cannot run doc tests)."""

from __future__ import annotations

from ci.cargo import first_error, has_lib, metadata, run_tests_check
from ci.parsers import parse_doctest_output
from ci.result import Finding, StageResult, Status
from ci.stage import Clock, StageContext


def run(ctx: StageContext) -> StageResult:
    """Run lib/bin tests and doc tests; any failing test fails the stage."""
    meta = metadata(ctx)
    clock = Clock()
    artifacts: dict[str, str] = {}
    run_tests_check(
        ctx, clock, "lib and bin tests (nextest)", ["--lib", "--bins", "--no-tests=pass"], artifacts
    )
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
                    found = [
                        Finding("doctests", first_error(res.output) or "cargo test --doc failed")
                    ]
                clock.findings += found
    return clock.result(ctx.name, artifacts)
