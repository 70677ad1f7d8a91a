"""`invoke report` and `invoke metrics`: plain functions (root in, lines out) that the
invoke tasks in tasks.py wrap, tested directly.

    invoke report            gate table + summary.md (and $GITHUB_STEP_SUMMARY) from the results
    invoke report --html     + report.html with charts from the results and the history
    invoke report --comment  + the one PR comment (created or updated in place)
    invoke report --record   + record the results as a CI run (GitHub: the stages ran apart)
    invoke metrics           the success metrics against their targets

Bad input (no results yet, a corrupt result file or history store, no token) is one
line and a non-zero exit, checked before anything is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from ci import report as gate_report
from ci import settings as settings_mod
from ci.cache.audit import STAGE as AUDIT_STAGE
from ci.history import utc_now
from ci.redact import Redactor, secrets_from_env
from ci.registry import STAGES
from ci.reports import data, metrics
from ci.reports.errors import CommentError, ReportError
from ci.reports.results import load_results, with_jobs
from ci.result import StageResult, atomic_write
from ci.settings import Settings


def git_merges(settings: Settings, since_days: int) -> list[metrics.Merge]:
    """Merge commits on the checked-out branch's first-parent line within the window."""
    from datetime import UTC, datetime

    from ci.errors import ToolMissing
    from ci.runner import Runner

    cwd = settings.workspace if settings.workspace.is_dir() else settings.root
    with Runner(echo=False, base_env=settings.env) as runner:
        try:
            res = runner.run(
                [
                    "git",
                    "log",
                    "--merges",
                    "--first-parent",
                    f"--since={since_days}.days",
                    "--format=%H %ct %P",
                ],
                cwd=cwd,
                capture=True,
            )
            merges = metrics.parse_merges(res.stdout) if res.ok else []
            if not merges:
                return []
            tips = runner.run(
                ["git", "log", "--no-walk=unsorted", "--format=%H %ct", *{m[2] for m in merges}],
                cwd=cwd,
                capture=True,
            )
        except ToolMissing:
            return []
    times = metrics.parse_times(tips.stdout) if tips.ok else {}

    def at(stamp: int) -> datetime:
        return datetime.fromtimestamp(stamp, UTC)

    return [
        metrics.Merge(sha, at(when), at(times[tip])) for sha, when, tip in merges if tip in times
    ]


def compute_metrics(settings: Settings) -> tuple[list[metrics.Metric], data.History]:
    """The metrics over `[metrics] window_days`, and the history they came from."""
    cfg = settings.section("metrics")
    window = cfg.whole("window_days", minimum=1)
    now = utc_now()
    history = data.read(settings, limit=100_000, since=now - timedelta(days=window))
    return metrics.compute(history, git_merges(settings, window), cfg, now), history


def critical_path_s(results: Sequence[StageResult]) -> float:
    """Wall time of the stages as the graph runs them (a stage starts when its needs end)."""
    by_name = {r.stage: r for r in results}
    ends: dict[str, float] = {}
    for spec in STAGES:
        if spec.name in by_name:
            start = max((ends[n] for n in spec.needs if n in ends), default=0.0)
            ends[spec.name] = start + by_name[spec.name].duration_s
    return max(ends.values(), default=0.0)


def record_results(settings: Settings, results: Sequence[StageResult]) -> str:
    """Record results gathered from separate jobs as one CI run (its wall time is the
    graph's critical path)."""
    from ci import ci_runs
    from ci.history import current_context

    full = {s.name for s in STAGES if s.in_ci} <= {r.stage for r in results}
    info = current_context(
        settings, ci_runs.KIND, meta=ci_runs.meta([r.stage for r in results], full, "report")
    )
    started = utc_now() - timedelta(seconds=critical_path_s(results))
    return ci_runs.record(settings, replace(info, started_at=started), results, False)


def _comment(
    settings: Settings, env: Mapping[str, str], say: Callable[[str], None]
) -> tuple[Callable[[str], str], Redactor]:
    """A function posting a body (checked up front: token, repository, PR number)."""
    from ci.github.retry import Backoff
    from ci.reports.comment import Commenter, body_for, target_from

    cfg = settings.section("report")
    token = env.get("GITHUB_TOKEN", "").strip()
    if not token:
        raise CommentError(
            "GITHUB_TOKEN is not set: the PR comment needs a token with 'pull-requests: "
            "write' (in a workflow: env GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }})"
        )
    redactor = Redactor([token])
    target = target_from(
        env, cfg.text("api_url"), cfg.text("repository"), cfg.whole("pull_request", minimum=0)
    )
    backoff = Backoff(
        attempts=cfg.whole("attempts", minimum=1), first=cfg.number("backoff", minimum=0)
    )
    marker = cfg.text("marker")

    def post(summary: str) -> str:
        client = Commenter(
            target,
            token,
            backoff=backoff,
            timeout=cfg.number("request_timeout", minimum=1),
            say=lambda line: say(redactor(line)),
        )
        start = time.monotonic()
        try:
            action, url = client.upsert(body_for(summary, marker), marker)
        finally:
            client.close()
        took = time.monotonic() - start
        return f"PR #{target.pull_request}: summary comment {action} in {took:.2f}s {url}".rstrip()

    return post, redactor


def run_report(
    root: Path,
    *,
    html: bool = False,
    comment: bool = False,
    record: bool = False,
    step_summary: bool = True,
    env: Mapping[str, str] | None = None,
    say: Callable[[str], None] = print,
) -> None:
    """`invoke report`: see the module docstring. `step_summary=False` leaves
    $GITHUB_STEP_SUMMARY alone (a second report step of the same job)."""
    import os

    env = dict(os.environ if env is None else env)
    settings = settings_mod.load(root, env)
    redact = Redactor(secrets_from_env(env, settings.secret_env))
    # the cache audit's row too, when the last `invoke ci` audited (it removes a stale one)
    jobs = settings.section("report").text("jobs").strip()
    names = [*(s.name for s in STAGES), AUDIT_STAGE]
    results = load_results(settings.out_dir, names, allow_none=bool(jobs))
    problem = ""
    if jobs:
        results, problem = with_jobs(results, jobs)
        if not results:
            raise ReportError("no stage job ran and no result arrived: nothing to report")
    post = None
    if comment:
        post, token_mask = _comment(settings, env, say)
        redact.add(token_mask.values)
    if record:
        say(redact(record_results(settings, results)))
    page = ""
    if html:
        start = time.monotonic()
        found, _ = compute_metrics(settings)
        cfg = settings.section("report")
        recent = data.read(settings, limit=cfg.whole("history_runs", minimum=1))
        from ci.reports.html import render

        page = render(
            [r.masked(redact) for r in results],
            recent,
            found,
            generated_at=utc_now(),
            coverage_target=settings.section("metrics").number("coverage_pct"),
        )
        render_s = time.monotonic() - start
    say(redact(gate_report.table(results)))
    summary = gate_report.write_summary(
        settings.out_dir,
        results,
        env.get("GITHUB_STEP_SUMMARY") if step_summary else None,
        redact,
    )
    say(f"summary: {summary}")
    if html:
        path = settings.out_dir / settings.section("report").text("html")
        atomic_write(path, redact(page))
        say(f"html report: {path} (rendered in {render_s:.2f}s)")
    if post is not None:
        say(redact(post(summary.read_text(encoding="utf-8"))))
    if problem:  # after the table, summary and comment: they show the missing stage too
        raise ReportError(problem)


def run_metrics(root: Path, say: Callable[[str], None] = print) -> None:
    """`invoke metrics`: the table, from the history store and git."""
    settings = settings_mod.load(root)
    found, history = compute_metrics(settings)
    window = settings.section("metrics").whole("window_days", minimum=1)
    where = history.location or "no history store yet"
    say(f"success metrics over the last {window} days ({where})")
    say(metrics.table(found))
