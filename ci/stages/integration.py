"""integration: provision Postgres and Redis, run the workspace's integration test
targets (`tests/*.rs`) with DATABASE_URL and REDIS_URL, tear the services down."""

from __future__ import annotations

from contextlib import ExitStack

from ci.cargo import count, metadata, nextest, target_kinds, test_findings
from ci.result import Finding, StageResult, Status
from ci.services import provision
from ci.stage import Clock, StageContext


def run(ctx: StageContext) -> StageResult:
    """Run integration tests against real services; any failure fails the stage."""
    names = ctx.settings.section("integration").list("services", ("postgres", "redis"))
    if "test" not in target_kinds(metadata(ctx)):
        return StageResult(
            ctx.name,
            Status.SKIPPED,
            0.0,
            0.0,
            summary="skipped: the workspace has no integration test targets (tests/*.rs)",
        )
    clock = Clock()
    artifacts: dict[str, str] = {}
    with ExitStack() as stack:
        with ctx.runner.group("services"), clock.check("services") as chk:
            say = ctx.runner.say
            services = stack.enter_context(
                provision(ctx.settings, names, on_ready=lambda s: say(s.describe()))
            )
            stack.callback(say, "services stopped: " + ", ".join(services))
            chk.summary = ", ".join(
                f"{s.name} ({s.backend}) {s.ready_s:.2f}s" for s in services.values()
            )
        for svc in services.values():
            ctx.runner.redact.add(svc.secrets)
        env = {svc.env_var: svc.url for svc in services.values()}
        with ctx.runner.group("integration tests (nextest)"), clock.check("tests") as chk:
            run_ = nextest(ctx, ["--test", "*"], env=env)
            if run_.junit:
                artifacts["junit"] = str(run_.junit)
            findings = test_findings("tests", run_.cases)
            chk.summary = count(run_.cases)
            if run_.returncode != 0:
                chk.status = Status.FAILED
                if not findings:
                    line = next((x for x in run_.output.splitlines() if x.startswith("error")), "")
                    findings = [Finding("tests", line.strip() or "cargo nextest failed")]
                    chk.summary = findings[0].message
            clock.findings += findings
    return StageResult(
        stage=ctx.name,
        status=clock.status(),
        duration_s=0.0,
        budget_s=0.0,
        summary="; ".join(f"{c.name}: {c.summary}" for c in clock.checks),
        findings=clock.findings,
        checks=clock.checks,
        artifacts=artifacts,
    )
