"""Measuring both sides: which benchmarks each side has, the interleaved schedule
(wall clock) or one callgrind run per side (instructions), and the rows they give."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ci.bench import measure, stats
from ci.bench.compare import INSTRUCTIONS, Row, fmt_percent, fmt_value, row, unknown_targets
from ci.bench.config import BenchConfig
from ci.bench.measure import Side
from ci.bench.targets import CRITERION, GUNGRAUN, BenchTarget
from ci.contract import StageContext
from ci.errors import ConfigError


def harness_of(mode: str) -> str:
    """The bench harness a mode measures with."""
    return GUNGRAUN if mode == INSTRUCTIONS else CRITERION


def _catalogue(
    ctx: StageContext, side: Side, targets: Sequence[BenchTarget]
) -> dict[str, tuple[BenchTarget, str]]:
    """{display name: (target, criterion id)}; an id two targets share is qualified by
    its target (`engine:book/insert`)."""
    listed = [(t, bench_id) for t in targets for bench_id in measure.list_criterion(ctx, side, t)]
    counts: dict[str, int] = {}
    for _, bench_id in listed:
        counts[bench_id] = counts.get(bench_id, 0) + 1
    return {
        (bench_id if counts[bench_id] == 1 else f"{t.name}:{bench_id}"): (t, bench_id)
        for t, bench_id in listed
    }


def _check_targets(cfg: BenchConfig, names: Sequence[str]) -> None:
    unit = "instructions" if cfg.mode == INSTRUCTIONS else "ns"
    wanted = [t for t in cfg.latency_targets if t.unit == unit]
    if cfg.mode != INSTRUCTIONS:
        wanted += cfg.memory_limits
    missing = unknown_targets(wanted, names)
    if missing:
        known = ", ".join(names) or "none"
        raise ConfigError(
            f"[tool.pipeline] bench targets name no {cfg.mode} benchmark of the workspace: "
            f"{', '.join(missing)} (benchmarks: {known})"
        )


def _order(round_no: int, sides: list[Side]) -> list[Side]:
    """base, head, then head, base, ...: neither side always runs first."""
    return sides if round_no % 2 == 0 else list(reversed(sides))


def measure_wall(
    ctx: StageContext, cfg: BenchConfig, head: Side, base: Side | None, scratch: Path
) -> list[Row]:
    """Criterion benchmarks of both sides, interleaved per benchmark and round."""
    head_cat = _catalogue(ctx, head, [t for t in head.targets if t.key in head.exes])
    base_cat = (
        _catalogue(ctx, base, [t for t in base.targets if t.key in base.exes]) if base else {}
    )
    _check_targets(cfg, sorted(head_cat))
    names = sorted(set(head_cat) | set(base_cat))
    if cfg.name_filter:
        names = [n for n in names if cfg.name_filter in n]
    rounds = cfg.rounds if base is not None else 1
    launches = sum((n in head_cat) + (n in base_cat) for n in names) * rounds
    per_run = cfg.timing.warm_up + cfg.timing.measurement + 0.4
    ctx.runner.say(
        f"bench: {len(names)} benchmark(s), {rounds} round(s) per side, {launches} runs "
        f"of ~{per_run:.1f}s: about {launches * per_run:.0f}s"
    )
    rows: list[Row] = []
    for i, name in enumerate(names, 1):
        sides = [s for s, cat in ((base, base_cat), (head, head_cat)) if s and name in cat]
        samples: dict[str, list[list[float]]] = {s.label: [] for s in sides}
        peak: int | None = None
        start = time.monotonic()
        for r in range(rounds):
            for side in _order(r, sides):
                target, bench_id = (head_cat if side is head else base_cat)[name]
                run = measure.run_criterion(ctx, side, target, bench_id, cfg.timing, scratch)
                samples[side.label].append(run.per_iteration_ns)
                if side is head and run.peak_rss is not None:
                    peak = max(peak or 0, run.peak_rss)
        est = {
            label: stats.estimate(rs, cfg.quantile, cfg.confidence, name)
            for label, rs in samples.items()
        }
        change = None
        if "base" in samples and "head" in samples:
            change = stats.compare_wall(
                samples["base"], samples["head"], cfg.quantile, cfg.confidence, name
            )
        result = row(
            name,
            "ns",
            est.get("base"),
            est.get("head"),
            change,
            cfg.threshold,
            compared=base is not None,
        )
        rows.append(replace(result, peak_rss=peak))
        took = time.monotonic() - start
        ctx.runner.say(f"bench: [{i}/{len(names)}] {_progress(rows[-1])} ({took:.1f}s)")
    return rows


def _progress(r: Row) -> str:
    parts = [r.name]
    if r.base is not None:
        parts.append(f"base {fmt_value(r.base.value, r.unit)}")
    if r.head is not None:
        parts.append(f"head {fmt_value(r.head.value, r.unit)}")
    if r.change is not None:
        parts.append(f"{fmt_percent(r.change.ratio)}")
    return " ".join(parts) + f": {r.verdict.value}"


def measure_instructions(
    ctx: StageContext,
    cfg: BenchConfig,
    head: Side,
    base: Side | None,
    scratch: Path,
    runner_dir: Path,
) -> list[Row]:
    """Gungraun benchmarks of both sides: one callgrind run per bench target and side."""
    counts: dict[str, dict[str, float]] = {"head": {}, "base": {}}
    sides = [s for s in (base, head) if s is not None]
    for side in sides:
        for target in side.targets:
            if target.key not in side.exes:
                continue
            ctx.runner.say(f"bench: {side.label}: {target.package}/{target.name} under callgrind")
            found = measure.run_gungraun(ctx, side, target, runner_dir, scratch, cfg.name_filter)
            counts[side.label].update({name: run.instructions for name, run in found.items()})
    if not cfg.name_filter:
        _check_targets(cfg, sorted(counts["head"]))
    rows = []
    for name in sorted(set(counts["head"]) | set(counts["base"])):
        b, h = counts["base"].get(name), counts["head"].get(name)
        change = stats.compare_counts(b, h, cfg.instruction_noise) if b and h else None
        rows.append(
            row(
                name,
                "instructions",
                None if b is None else stats.Estimate(b, b, b),
                None if h is None else stats.Estimate(h, h, h),
                change,
                cfg.threshold,
                compared=base is not None,
            )
        )
        ctx.runner.say(f"bench: {_progress(rows[-1])}")
    return rows
