"""integration: provision Postgres and Redis, run the workspace's integration test
targets (`tests/*.rs`) with DATABASE_URL and REDIS_URL, tear the services down."""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import ExitStack

from ci import features
from ci.cache import StageCache, affected
from ci.cargo import metadata, run_tests_check
from ci.contract import Clock, StageContext, commit, run_id
from ci.result import StageResult, Status
from ci.services import provision, specs_from_settings
from ci.services.local import LocalBackend
from ci.settings import Settings


def cache_inputs(settings: Settings) -> dict[str, str]:
    """Beyond the files: which service servers the tests would meet. The local server
    binaries (path, size, mtime) and, where docker may be used, the image ids."""
    names = settings.section("integration").strings("services")
    specs = specs_from_settings(settings, names)
    local = LocalBackend()
    parts = []
    for spec in specs:
        tools = ["postgres"] if spec.name == "postgres" else ["redis-server"]
        for tool in tools:
            found = local._binary(tool, spec.version)
            if found:
                st = os.stat(found)
                parts.append(f"{found}:{st.st_size}:{st.st_mtime_ns}")
    backend = settings.section("services").text("backend")
    if backend != "local" and shutil.which("docker"):
        try:
            proc = subprocess.run(
                ["docker", "image", "inspect", "--format", "{{.Id}}", *(s.image for s in specs)],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
            parts.append(proc.stdout.strip() or "no images")
        except (OSError, subprocess.TimeoutExpired):
            parts.append("docker unreachable")
    return {"services": "\n".join(parts)}


def run(ctx: StageContext) -> StageResult:
    """Run integration tests against real services; any failure fails the stage. With
    the stage cache on, only the packages whose inputs changed are tested (and their
    services started); the others' results are replayed from their last green run."""
    names = ctx.settings.section("integration").strings("services")
    meta = metadata(ctx)
    feature_set = features.configured(ctx.settings)
    targets, gated = features.test_targets(meta, feature_set)
    if not targets:
        why = (
            "every integration test target needs features that are not enabled: "
            + "; ".join(g.describe() for g in gated)
            if gated
            else "the workspace has no integration test targets (tests/*.rs)"
        )
        return StageResult(ctx.name, Status.SKIPPED, 0.0, 0.0, summary=f"skipped: {why}")
    clock = Clock()
    artifacts: dict[str, str] = {}
    cache = None
    if ctx.spec is not None and ctx.spec.cache and not ctx.posargs:
        cache = StageCache.open(ctx.settings, ctx.runner.say)
    pkg_plan = affected.plan(cache, ctx.spec, meta, ctx.workspace, ("test",))
    scope = pkg_plan.to_test if pkg_plan is not None else None
    if pkg_plan is not None:
        ctx.runner.say(f"packages: {pkg_plan.describe()}")
    replayed = pkg_plan.replayed_cases if pkg_plan is not None else []
    with ExitStack() as stack:
        env: dict[str, str] = {}
        if scope is None or scope:
            with ctx.runner.group("services"), clock.check("services") as chk:
                say = ctx.runner.say
                services = stack.enter_context(provision(ctx.settings, names, say=say))
                stack.callback(say, "services stopped: " + ", ".join(services))
                chk.summary = ", ".join(
                    f"{s.name} ({s.backend}) {s.ready_s:.2f}s" for s in services.values()
                )
            for svc in services.values():
                ctx.runner.redact.add(svc.secrets)
            env = {svc.env_var: svc.url for svc in services.values()}
        threads = ctx.settings.section("integration").whole("test_threads", minimum=0)
        tests = run_tests_check(
            ctx,
            clock,
            "integration tests",
            [
                *feature_set.cargo_args(),
                *(arg for name in targets for arg in ("--test", name)),
                *(["--test-threads", str(threads)] if threads else []),
            ],
            artifacts,
            env,
            packages=scope,
            replayed=replayed,
        )
    features.report_gated(clock, gated)
    if cache is not None and pkg_plan is not None:
        green = clock.status() in (Status.PASSED, Status.SKIPPED)
        affected.remember(
            cache,
            pkg_plan,
            tests.cases,
            green,
            run_id(ctx.settings.env),
            commit(ctx),
            ran=tests.ran,
            say=ctx.runner.say,
        )
    return clock.result(ctx.name, artifacts)
