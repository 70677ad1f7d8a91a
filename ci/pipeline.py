"""`invoke ci` and the other flows: plan the graph, run it (live progress on a terminal,
plain lines elsewhere), print the gate table, write `summary.md`, record the run in the
history store. The invoke tasks are one call into `run_flow`."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ci import report, settings
from ci.cache import Entry, ReplayFailed, StageCache
from ci.cache import audit as audit_mod
from ci.console import MaskedStream, Writer
from ci.errors import ConfigError, PipelineError
from ci.flow import (
    Executor,
    FlowOutcome,
    Handle,
    Launcher,
    MaskChannel,
    ProcessLauncher,
    stage_command,
)
from ci.graph import Step, plan
from ci.history.records import RunInfo
from ci.prebuild import Prebuild
from ci.progress import Display
from ci.redact import Redactor, add_mask_lines, secrets_from_env
from ci.registry import get_stage
from ci.result import StageResult, result_path, write_result
from ci.settings import Settings

_FALSE = ("", "0", "false", "no")


def choose_display(
    cfg: Settings, env: dict[str, str], out: MaskedStream, steps: list[Step]
) -> Display | None:
    """The live view (rich) on a terminal outside CI; None means plain lines.
    `[tool.pipeline] progress = "live"` forces it, `"plain"` never uses it."""
    mode = cfg.top.choice("progress", ("auto", "live", "plain"))
    if mode == "plain":
        return None
    if mode == "auto":
        in_ci = env.get("CI", "").strip().lower() not in _FALSE
        if in_ci or env.get("GITHUB_ACTIONS") == "true" or env.get("TERM") == "dumb":
            return None
        if not out.isatty():
            return None
    from ci.live import LiveDisplay, make_console

    return LiveDisplay(make_console(out, force=mode == "live"), steps)


def _context(cfg: Settings, stages: Sequence[str] | None, steps: list[Step]) -> RunInfo | None:
    """The history record this run will become, or None when runs are not recorded."""
    if not cfg.top.flag("record_runs"):
        return None
    from ci import ci_runs
    from ci.history import current_context

    return current_context(
        cfg, ci_runs.KIND, meta=ci_runs.meta([s.name for s in steps], full=stages is None)
    )


def _record(cfg: Settings, info: RunInfo, outcome: FlowOutcome) -> str:
    """Record the run; a history that cannot be written is one warning line, never a
    changed verdict."""
    from ci import ci_runs

    try:
        return ci_runs.record(cfg, info, outcome.results, outcome.interrupted)
    except PipelineError as err:
        return f"warning: history not recorded: {err}"


class _Replayed:
    """The handle of a stage replayed from the cache: already finished, green."""

    def poll(self) -> int | None:
        return 0

    def interrupt(self) -> None:
        return None

    def kill(self) -> None:
        return None


class CachingLauncher:
    """Replays the stages whose inputs are unchanged (no process is started for them:
    that is what makes a no-change run fast) and launches the others, and those whose
    replay fails (the entry was evicted since the lookup: the stage runs for real)."""

    def __init__(
        self,
        inner: Launcher,
        cache: StageCache,
        hits: dict[str, Entry],
        out_dir: Path,
        budget: Callable[[str], float],
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.inner, self.cache, self.hits = inner, cache, hits
        self.out_dir, self.budget, self.redact = out_dir, budget, redact

    def start(self, name: str, console: Path) -> Handle:
        entry = self.hits.get(name)
        if entry is None:
            return self.inner.start(name, console)
        try:
            self.cache.replay(
                entry, self.out_dir, self.budget(name), time.monotonic(), redact=self.redact
            )
        except ReplayFailed as err:
            self.cache.store.warn(f"cache: {err}; running {name}")
            return self.inner.start(name, console)
        console.write_text(f"{name}: replayed from the stage cache (run of {entry.at})\n")
        return _Replayed()


class _Route:
    """Starts the stages in `special` with their own launcher, the others with `default`
    (the audited stages run with the cache off)."""

    def __init__(self, default: Launcher, special: dict[str, Launcher]) -> None:
        self.default, self.special = default, special

    def start(self, name: str, console: Path) -> Handle:
        return self.special.get(name, self.default).start(name, console)


def cache_hits(
    cfg: Settings, steps: list[Step], out: Writer
) -> tuple[StageCache | None, dict[str, Entry]]:
    """The stages of the plan that can be replayed."""

    def warn(text: str) -> None:
        out.write(text + "\n")

    cache = StageCache.open(cfg, warn)
    if cache is None:
        return None, {}
    hits: dict[str, Entry] = {}
    for step in steps:
        try:
            inputs = cache.inputs(get_stage(step.name))
            entry = cache.lookup(step.name, inputs) if inputs is not None else None
        except (OSError, ValueError) as err:  # unknowable inputs: it runs, and says why
            why = getattr(err, "strerror", None) or err
            warn(f"cache: cannot compute the inputs of {step.name} ({why}); it runs")
            continue
        if entry is not None:
            hits[step.name] = entry
    return cache, hits


def run_flow(
    root: Path,
    stages: Sequence[str] | None,
    *,
    parallelism: int = 0,
    fail_fast: bool = False,
    no_cache: bool = False,
    audit: float | None = None,
) -> tuple[int, str]:
    """Run `stages` (None: the whole pipeline) of project `root` as a graph.

    `audit` (a fraction, 1 = all): that share of the stages that would be replayed runs
    for real with the cache off, and the verdicts are compared (ci/cache/audit.py).
    Returns (exit code, one closing line). Raises PipelineError for bad input before
    anything runs. Everything printed is masked; under GitHub Actions the secrets are
    registered with the runner (`::add-mask::`) on its real terminal only.
    """
    env = dict(os.environ)
    if audit is not None:
        audit_mod.fraction(audit)
        if no_cache:
            raise ConfigError("--audit-cache compares replays with real runs: drop --no-cache")
    if no_cache:
        env["CIPIPE_CACHE__ENABLED"] = "false"  # the stage processes run, too
    cfg = settings.load(root, env)
    redactor = Redactor(secrets_from_env(env, cfg.secret_env))
    steps = plan(stages, cfg.budget, cfg.timeout)
    github = env.get("GITHUB_ACTIONS") == "true"
    info = _context(cfg, stages, steps)
    out = MaskedStream(sys.stdout, redactor)
    channel: MaskChannel | None = None
    audited: dict[str, Entry] = {}
    replayable = 0
    prebuild: Prebuild | None = None
    if github:
        for line in add_mask_lines(redactor.values):
            out.raw_write(line + "\n")
        channel = MaskChannel(out.raw_write)
    result_path(cfg.out_dir, audit_mod.STAGE).unlink(missing_ok=True)  # an earlier audit's
    names = " → ".join(s.name + _after(s) for s in steps)
    mode = "fail-fast" if fail_fast else "a failure blocks only what depends on it"
    out.write(f"plan: {names}; {mode}\n")
    out.write(f"configuration: {cfg.source_label()}\n")
    try:
        launcher_fd = channel.write_fd if channel else None
        launcher: Launcher = ProcessLauncher(stage_command(root / "noxfile.py"), env, launcher_fd)
        cache, hits = cache_hits(cfg, steps, out)
        if audit is not None:
            if cache is None:
                raise ConfigError(
                    "--audit-cache: the stage cache is off ([tool.pipeline.cache] enabled)"
                )
            audited = {n: hits.pop(n) for n in audit_mod.sample(list(hits), audit)}
            off = {**env, "CIPIPE_CACHE__ENABLED": "false"}
            real = ProcessLauncher(stage_command(root / "noxfile.py"), off, launcher_fd)
            launcher = _Route(launcher, dict.fromkeys(audited, real))
            replayable = len(hits) + len(audited)
            out.write(
                f"cache audit: running {', '.join(audited) or 'nothing'} for real with the "
                f"cache off ({len(audited)} of {replayable} replayable)\n"
            )
        if cache is not None and hits:
            out.write(f"cache: replaying {', '.join(hits)} (inputs unchanged)\n")
            launcher = CachingLauncher(launcher, cache, hits, cfg.out_dir, cfg.budget, redactor)
        if Prebuild.wanted(cfg, [s.name for s in steps], hits):
            prebuild = Prebuild(cfg, env, cfg.out_dir / "prebuild.log")
            prebuild.start()
            out.write("prebuild: building the tests while lint runs (dropped if lint fails)\n")
        outcome = Executor(
            steps,
            cfg.out_dir,
            launcher,
            parallelism=parallelism or cfg.parallelism,
            fail_fast=fail_fast,
            stream=out,
            github=github,
            grace_s=cfg.cancel_grace,
            redact=redactor,
            display=choose_display(cfg, env, out, steps),
            on_result=prebuild.on_result if prebuild is not None else None,
        ).run()
    finally:
        if prebuild is not None:
            prebuild.stop()
        if channel is not None:
            channel.close()
    if outcome.interrupted:
        # Everything is torn down; we are on our way out with 130. A late second signal
        # (GitHub's SIGTERM after SIGINT) must not turn that into a kill.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
    if audit is not None and cache is not None:
        outcome.results.append(_audit(cache, audited, replayable, outcome, cfg, redactor, out))
    out.write("\n" + report.table(outcome.results) + "\n")
    summary = report.write_summary(
        cfg.out_dir, outcome.results, env.get("GITHUB_STEP_SUMMARY"), redactor
    )
    out.write(f"results: {cfg.out_dir}/<stage>.json   summary: {summary}\n")
    if info is not None:
        out.write(_record(cfg, info, outcome) + "\n")
    out.finish()
    code = outcome.exit_code
    if outcome.interrupted:
        return code, "interrupted: running stages were cancelled and torn down"
    if code:
        red = [r.stage for r in outcome.results if r.blocking and not r.status.ok]
        return code, f"pipeline failed: {', '.join(red)}"
    return 0, "pipeline passed"


def _audit(
    cache: StageCache,
    audited: dict[str, Entry],
    replayable: int,
    outcome: FlowOutcome,
    cfg: Settings,
    redactor: Redactor,
    out: MaskedStream,
) -> StageResult:
    """Compare the audited stages' real verdicts with their entries, poison those that
    disagree, and write the audit's own result (a row of the gate table)."""
    audits = audit_mod.judge(audited, outcome.results)
    for item in audits:
        if item.concluded and item.diffs:
            audit_mod.poison(cache.store, item)
            out.write(f"cache audit: {item.stage} DISAGREES ({'; '.join(item.diffs)}): poisoned\n")
    result = audit_mod.conclude(audits, replayable, cfg.out_dir, redactor)
    write_result(cfg.out_dir, result, redactor)
    return result


def _after(step: Step) -> str:
    """` (after lint)`, or ` (starts after lint, needs unit)` for an early start."""
    if step.waits_for == step.needs:
        return f" (after {', '.join(step.needs)})" if step.needs else ""
    starts = f"starts after {', '.join(step.waits_for)}" if step.waits_for else "starts at once"
    return f" ({starts}, needs {', '.join(step.needs)})"
