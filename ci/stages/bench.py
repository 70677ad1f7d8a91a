"""bench: the workspace's benchmarks, measured and recorded; with a base revision
(`-- --base REF` or `[bench] base`), base and head built side by side and measured
interleaved on this machine, then compared (see ci/bench/)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from ci import interrupts, tools
from ci.bench import config, measure, render
from ci.bench.compare import INSTRUCTIONS, Report, Verdict, apply_targets
from ci.bench.measure import Side
from ci.bench.record import KIND, record
from ci.bench.session import harness_of, measure_instructions, measure_wall
from ci.bench.targets import bench_targets, gungraun_version
from ci.bench.worktree import base_checkout
from ci.cargo import metadata
from ci.contract import Clock, StageContext
from ci.errors import ConfigError, HistoryError, ToolMissing
from ci.history import RunInfo, current_context
from ci.result import Finding, StageResult, Status, atomic_write
from ci.runner import which
from ci.settings import Settings


def cache_inputs(settings: Settings) -> dict[str, str] | None:
    """Beyond the files and settings: the machine the numbers were measured on (numbers
    from another machine are never replayed) and the base's commit (a base ref that moved
    is a new comparison). A base that does not resolve: not cacheable, the stage runs and
    says why."""
    from ci.cache.files import run_git
    from ci.history.context import this_machine

    machine = this_machine(settings.section("history").text("machine")).id
    ref = settings.section("bench").text("base").strip()
    if not ref:
        return {"machine": machine, "base": ""}
    out = run_git(settings.workspace, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if not out:
        return None
    return {"machine": machine, "base": out.decode().strip()}


@contextmanager
def _scratch() -> Iterator[Path]:
    """A temp dir for criterion and gungraun output, removed on every way out."""
    path = Path(tempfile.mkdtemp(prefix="cipipe-bench-scratch-"))
    try:
        yield path
    finally:
        with interrupts.shield():
            shutil.rmtree(path, ignore_errors=True)


def _instruction_tools(ctx: StageContext) -> tuple[Path, str]:
    """valgrind on PATH and the pinned gungraun runner: (runner's dir, its version)."""
    if which("valgrind") is None:
        raise ToolMissing(
            "valgrind", "install it (apt-get install valgrind); `bash .ci/setup` does"
        )
    exe, version = tools.resolve(
        ctx.runner, "gungraun-runner", auto_install=ctx.settings.top.flag("install_tools")
    )
    return Path(exe).parent, version


def _check_library(side: Side, runner_version: str) -> None:
    lock = side.workspace / "Cargo.lock"
    found = gungraun_version(lock.read_text(encoding="utf-8")) if lock.is_file() else None
    if found and found != runner_version:
        raise ConfigError(
            f"{side.label} uses gungraun {found} but the pipeline pins gungraun-runner "
            f"{runner_version} (ci/tools.py): the library and its runner must be the same version"
        )


def _target_root(ctx: StageContext) -> Path:
    return ctx.settings.cargo_target_dir or (ctx.workspace / "target")


def run(ctx: StageContext) -> StageResult:
    """Measure (and compare) the benchmarks; gate on regressions and absolute targets."""
    cfg = config.load(ctx.settings, ctx.posargs)
    harness = harness_of(cfg.mode)
    head_targets = [t for t in bench_targets(metadata(ctx)) if t.harness == harness]
    if not head_targets:
        return StageResult(
            ctx.name,
            Status.SKIPPED,
            0.0,
            0.0,
            summary=f"skipped: the workspace has no {harness} bench targets ({cfg.mode} mode)",
        )
    runner_dir, tool_versions = None, {}
    if cfg.mode == INSTRUCTIONS:
        runner_dir, version = _instruction_tools(ctx)
        tool_versions["gungraun-runner"] = version
    info = current_context(ctx.settings, KIND, meta={"mode": cfg.mode}, tool_versions=tool_versions)
    root = _target_root(ctx)
    head = Side("head", ctx.workspace, root / "bench-head", info.commit, head_targets)
    clock = Clock()
    with ExitStack() as stack:
        scratch = stack.enter_context(_scratch())
        base: Side | None = None
        if cfg.base:
            checkout = stack.enter_context(
                base_checkout(ctx.runner, ctx.workspace, cfg.base, cfg.worktree)
            )
            base_targets = bench_targets(metadata(ctx, checkout.workspace))
            base = Side(
                "base",
                checkout.workspace,
                root / "bench-base",
                checkout.commit,
                [t for t in base_targets if t.harness == harness],
            )
        sides = [s for s in (base, head) if s is not None]
        with ctx.runner.group("build"), clock.check("build") as chk:
            for side in sides:
                if runner_dir is not None:
                    _check_library(side, tool_versions["gungraun-runner"])
                measure.build(ctx, side, side.targets, cfg.features)
            chk.summary = " and ".join(f"{s.label} ({len(s.exes)} bench targets)" for s in sides)
        with ctx.runner.group("measure"), clock.check("measure") as chk:
            if runner_dir is not None:
                rows = measure_instructions(ctx, cfg, head, base, scratch, runner_dir)
            else:
                rows = measure_wall(ctx, cfg, head, base, scratch)
            chk.summary = f"{len(rows)} benchmark(s)" + render.memory_note(rows)
    rows = apply_targets(rows, cfg.latency_targets, cfg.memory_limits, cfg.mode)
    report = Report(
        mode=cfg.mode,
        threshold=cfg.threshold,
        on_regression=cfg.on_regression,
        confidence=cfg.confidence,
        rows=rows,
        base_ref=cfg.base,
        base_commit=base.commit if base else None,
        head_commit=info.commit or None,
        settings={
            "quantile": cfg.quantile,
            "rounds": cfg.rounds if base else 1,
            "warm_up_s": cfg.timing.warm_up,
            "measurement_s": cfg.timing.measurement,
            "sample_size": cfg.timing.sample_size,
            "instruction_noise_percent": cfg.instruction_noise * 100,
        },
    )
    if not rows:
        raise ConfigError(
            f"no benchmark matches --filter {cfg.name_filter!r}"
            if cfg.name_filter
            else f"the {harness} bench targets define no benchmarks"
        )
    _gate(clock, report)
    # The verdict first: it is what the gate table's summary column has room for.
    clock.checks.sort(key=lambda c: c.name not in ("regressions", "targets"))
    artifacts = _write(ctx, report)
    _record(ctx, clock, info, report)
    return clock.result(ctx.name, artifacts)


def _gate(clock: Clock, report: Report) -> None:
    """The regressions and targets checks."""
    with clock.check("regressions") as chk:
        chk.summary = render.headline(report)
        severity = "error" if report.on_regression == "fail" else "warning"
        for r in report.regressions:
            clock.findings.append(
                Finding("regressions", render.regression_line(r, report), severity=severity)
            )
        if report.regressions and severity == "error":
            chk.status = Status.FAILED
        improved = report.count(Verdict.IMPROVEMENT)
        if improved and not report.regressions:
            chk.summary += f"; {improved} improvement(s)"
    with clock.check("targets") as chk:
        breaches = report.breaches
        chk.summary = f"{len(breaches)} missed" if breaches else "all met"
        if breaches:
            chk.status = Status.FAILED
            clock.findings += [Finding("targets", b) for b in breaches]


def _write(ctx: StageContext, report: Report) -> dict[str, str]:
    """bench.md (the markdown section) and comparison.json, masked, atomically."""
    md = ctx.artifacts_dir / "bench.md"
    data = ctx.artifacts_dir / "comparison.json"
    atomic_write(md, ctx.runner.redact(render.markdown(report)))
    atomic_write(data, ctx.runner.redact(json.dumps(report.to_dict(), indent=2) + "\n"))
    ctx.runner.say(render.text_table(report))
    return {"markdown": str(md), "comparison": str(data)}


def _record(ctx: StageContext, clock: Clock, info: RunInfo, report: Report) -> None:
    """The run in the history store; a store that cannot be written is a warning."""
    status = clock.status().value
    if report.regressions and status == "passed":
        status = "review"
    try:
        _, where = record(ctx.settings, info.finished(status), report)
        note = " (uncommitted changes: never a baseline)" if info.dirty else ""
        ctx.runner.say(f"bench: recorded in {where}{note}")
    except HistoryError as err:
        clock.findings.append(Finding("history", f"not recorded: {err}", severity="warning"))
