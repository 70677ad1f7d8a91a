"""unit: library and binary tests with cargo-nextest (JUnit report), then doc tests
with `cargo test --doc` (nextest cannot run doc tests)."""

from __future__ import annotations

from ci.cargo import first_error, has_lib, metadata, run_tests_check
from ci.errors import ConfigError
from ci.parsers import parse_doctest_output
from ci.result import Finding, StageResult, Status
from ci.stage import Clock, StageContext


def seed_env(ctx: StageContext) -> dict[str, str]:
    """PROPTEST_RNG_SEED from `[unit] proptest_seed` unless the caller set one already."""
    seed = ctx.settings.section("unit").text("proptest_seed").strip()
    if not seed or ctx.settings.env.get("PROPTEST_RNG_SEED"):
        return {}
    if not seed.isdigit():
        raise ConfigError(
            f"[tool.pipeline] unit.proptest_seed (or $CIPIPE_UNIT__PROPTEST_SEED): expected a "
            f"decimal number or empty, got {seed!r}"
        )
    return {"PROPTEST_RNG_SEED": seed}


def run(ctx: StageContext) -> StageResult:
    """Run lib/bin tests and doc tests; any failing test fails the stage."""
    meta = metadata(ctx)
    clock = Clock()
    artifacts: dict[str, str] = {}
    env = seed_env(ctx)
    if env:
        ctx.runner.say(f"property tests: fixed seed PROPTEST_RNG_SEED={env['PROPTEST_RNG_SEED']}")
    run_tests_check(
        ctx,
        clock,
        "lib and bin tests",
        ["--lib", "--bins", "--no-tests=pass"],
        artifacts,
        env,
        runner=ctx.settings.section("unit").choice("runner", ("libtest", "nextest")),
    )
    with ctx.runner.group("doc tests"), clock.check("doctests") as chk:
        if not has_lib(meta):
            chk.status = Status.SKIPPED
            chk.summary = "skipped: no library target, so no doc tests"
        else:
            res = ctx.cargo(["test", "--workspace", "--doc"], env=env)
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
