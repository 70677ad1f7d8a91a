"""unit: library and binary tests (libtest by default, or nextest; a JUnit report either
way), then doc tests with `cargo test --doc` (nextest cannot run doc tests)."""

from __future__ import annotations

from pathlib import Path

from ci import features
from ci.cache import StageCache, affected
from ci.cargo import first_error, has_lib, metadata, run_tests_check
from ci.contract import Clock, StageContext, commit, run_id
from ci.errors import ConfigError
from ci.parsers import TestCase, parse_libtest
from ci.result import Finding, StageResult, Status


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
    """Run lib/bin tests and doc tests; any failing test fails the stage. With the stage
    cache on, only the packages whose inputs changed are tested; the others' results are
    replayed from their last green run."""
    meta = metadata(ctx)
    feature_set = features.configured(ctx.settings)
    clock = Clock()
    artifacts: dict[str, str] = {}
    env = seed_env(ctx)
    if env:
        ctx.runner.say(f"property tests: fixed seed PROPTEST_RNG_SEED={env['PROPTEST_RNG_SEED']}")
    cache = None
    if ctx.spec is not None and ctx.spec.cache and not ctx.posargs:
        cache = StageCache.open(ctx.settings, ctx.runner.say)
    pkg_plan = affected.plan(cache, ctx.spec, meta, ctx.workspace, ("lib", "bin", "proc-macro"))
    scope = pkg_plan.to_test if pkg_plan is not None else None
    replayed = pkg_plan.replayed_cases if pkg_plan is not None else []
    if pkg_plan is not None:
        ctx.runner.say(f"packages: {pkg_plan.describe()}")
    tests = run_tests_check(
        ctx,
        clock,
        "lib and bin tests",
        [*feature_set.cargo_args(), "--lib", "--bins", "--no-tests=pass"],
        artifacts,
        env,
        runner=ctx.settings.section("unit").choice("runner", ("libtest", "nextest")),
        packages=scope,
        replayed=[c for c in replayed if not c.suite.startswith("doc:")],
    )
    docs = _doc_tests(
        ctx, clock, meta, env, scope, [c for c in replayed if c.suite.startswith("doc:")]
    )
    features.report_gated(clock, features.test_targets(meta, feature_set, ("bin",))[1])
    if cache is not None and pkg_plan is not None:
        green = clock.status() in (Status.PASSED, Status.SKIPPED)
        affected.remember(
            cache,
            pkg_plan,
            [*tests.cases, *docs],
            green,
            run_id(ctx.settings.env),
            commit(ctx),
            ran=tests.ran,
            say=ctx.runner.say,
        )
    return clock.result(ctx.name, artifacts)


def _doc_tests(
    ctx: StageContext,
    clock: Clock,
    meta: dict[str, object],
    env: dict[str, str],
    scope: list[str] | None,
    replayed: list[TestCase],
) -> list[TestCase]:
    """`cargo test --doc` (nextest cannot run doc tests), over `scope` when given; the
    doc test cases run (suite `doc:<crate>`)."""
    with ctx.runner.group("doc tests"), clock.check("doctests") as chk:
        if not has_lib(meta):
            chk.status = Status.SKIPPED
            chk.summary = "skipped: no library target, so no doc tests"
            return []
        cases: list[TestCase] = []
        if scope is None or scope:
            # Always the whole workspace (a `-p` selection would resolve features
            # differently and rebuild); a name filter keeps the unchanged packages' doc
            # tests from being compiled and run (each is a rustdoc compilation).
            filters = doc_filters(meta, ctx.workspace, scope)
            res = ctx.runner.run(
                [
                    *("cargo", "test", "--workspace", "--doc"),
                    *features.configured(ctx.settings).cargo_args(),
                    *("--", "--color", "never", *filters),
                ],
                cwd=ctx.workspace,
                env={**ctx.cargo_env(), **env},
                merge_stderr=True,
            )
            cases = [c for c in parse_libtest(res.stdout) if c.suite.startswith("doc:")]
            if not res.ok:
                chk.status = Status.FAILED
                found = [
                    Finding("doctests", f"doc test failed: {c.name}: {c.message}".rstrip(": "))
                    for c in cases
                    if c.status == "failed"
                ]
                if not found:
                    found = [
                        Finding("doctests", first_error(res.output) or "cargo test --doc failed")
                    ]
                clock.findings += found
        ran = {c.suite for c in cases}
        replayed = [c for c in replayed if c.suite not in ran]  # what ran is never replayed
        passed = sum(c.status == "passed" for c in [*cases, *replayed])
        failed = sum(c.status == "failed" for c in cases)
        chk.summary = f"{passed} passed, {failed} failed"
        if replayed:
            chk.summary += f" ({len(replayed)} replayed from the cache)"
        return cases


def doc_filters(meta: dict[str, object], workspace: Path, scope: list[str] | None) -> list[str]:
    """libtest name filters selecting the doc tests of the packages in `scope`: rustdoc
    names a doc test after its file, relative to the workspace root
    (`crates/core/src/book.rs - book::Book (line 12)`), so a package's folder selects its
    own. Empty (run all) for the whole workspace, or when a package in scope is the
    workspace root itself (its folder would be no filter at all). A filter that matches
    more packages only runs more: never fewer than the scope."""
    if scope is None:
        return []
    root = workspace.resolve()
    filters: list[str] = []
    packages = meta.get("packages")
    for pkg in packages if isinstance(packages, list) else []:
        if not isinstance(pkg, dict) or pkg.get("name") not in scope:
            continue
        folder = Path(str(pkg.get("manifest_path", ""))).resolve().parent
        if folder == root or root not in folder.parents:
            return []
        filters.append(folder.relative_to(root).as_posix() + "/")
    return sorted(filters)
