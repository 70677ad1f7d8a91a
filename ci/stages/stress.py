"""stress: how far the service goes. Ramp mode raises the rate step by step (each step a
fixed-rate run of `step_seconds`) until a threshold breaks, refines between the last good
and the first bad rate, and reports the highest sustainable rate (red when it is under
`min_rate`). Soak mode holds one rate for `soak_seconds` in windows and fails when memory
grows past a bound or the p99 drifts. Time-boxed by configuration so CI runs a short one.

Options: `nox -s stress -- --soak`, `--seconds N` (soak length), `--max-rate R`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ci.contract import Clock, StageContext
from ci.errors import ConfigError, ServiceError
from ci.history import Measurement
from ci.loadtest import gates
from ci.loadtest.service import Running, build, generate, serve
from ci.result import Finding, StageResult, Status, atomic_write
from ci.stages.load import measurements, record, thresholds


def _args(posargs: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nox -s stress --", add_help=False)
    parser.add_argument("--soak", action="store_true")
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--max-rate", type=float)
    args, rest = parser.parse_known_args(list(posargs))
    if rest:
        raise ConfigError(
            f"stress: unknown argument(s) {' '.join(rest)}; use --soak, --seconds, --max-rate"
        )
    return args


def _step(
    ctx: StageContext, generator: Path, running: Running, rate: float, secs: float, conns: int
) -> gates.LoadResult:
    raw = generate(ctx, generator, running, rate, secs, conns)
    try:
        return gates.parse_result(raw)
    except ValueError as err:
        raise ServiceError(f"load generator output unreadable: {err}") from None


def run(ctx: StageContext) -> StageResult:
    """Ramp (default) or soak, per `[tool.pipeline.stress]`."""
    sec = ctx.settings.section("stress")
    args = _args(ctx.posargs)
    soak = args.soak or sec.choice("mode", ("ramp", "soak")) == "soak"
    conns = sec.whole("connections", minimum=1)
    limits = thresholds(ctx, "stress")
    clock = Clock()
    binaries = build(ctx, ctx.settings.section("load").text("generator"))
    startup = ctx.settings.section("load").number("startup_timeout", minimum=1)
    with serve(ctx, binaries.server, startup_timeout=startup) as running:
        if soak:
            return _soak(ctx, clock, binaries.generator, running, args, conns, limits)
        ramp = gates.Ramp(
            start=sec.number("start_rate", minimum=1),
            factor=sec.number("factor", minimum=1.01),
            ceiling=args.max_rate or sec.number("max_rate", minimum=1),
            refine=sec.whole("refine_steps", minimum=0),
        )
        step_s = sec.number("step_seconds", minimum=1)
        tried: list[tuple[float, bool]] = []
        results: dict[float, gates.LoadResult] = {}
        with clock.check("ramp") as chk:
            while (rate := gates.next_rate(ramp, tried)) is not None:
                result = _step(ctx, binaries.generator, running, rate, step_s, conns)
                held = not gates.breaches(result, limits)
                tried.append((rate, held))
                results[rate] = result
                mark = "held" if held else "broke"
                ctx.runner.say(f"stress: {rate:g} req/s {mark}: {result.describe()}")
            best = gates.sustainable(tried)
            floor = sec.number("min_rate", minimum=0)
            if best is None:
                chk.status = Status.FAILED
                chk.summary = f"not even {ramp.start:g} req/s was sustainable"
            else:
                at = results[best]
                chk.summary = (
                    f"highest sustainable rate {best:g} req/s (p99 {at.p99_ms:.2f} ms, "
                    f"{100 * at.error_rate:.2f}% errors)"
                )
                if best >= ramp.ceiling:
                    chk.summary += f"; the ceiling {ramp.ceiling:g} req/s held"
                chk.status = Status.FAILED if best < floor else Status.PASSED
                if best < floor:
                    chk.summary += f", under the required {floor:g} req/s"
    if chk.status is not Status.PASSED:
        clock.findings.append(Finding("ramp", chk.summary, rule="sustainable-rate"))
    markdown = ctx.artifacts_dir / "stress.md"
    atomic_write(markdown, ctx.runner.redact(_ramp_markdown(tried, results, best, limits)))
    values = [Measurement("stress", "sustainable_rate", best or 0.0, "req/s")]
    if best is not None:
        values += measurements("stress", results[best])
    record(ctx, "stress", chk.status.value, values)
    return clock.result(ctx.name, {"markdown": str(markdown)})


def _soak(
    ctx: StageContext,
    clock: Clock,
    generator: Path,
    running: Running,
    args: argparse.Namespace,
    conns: int,
    limits: gates.Thresholds,
) -> StageResult:
    sec = ctx.settings.section("stress")
    rate = sec.number("soak_rate", minimum=1)
    total = args.seconds or sec.number("soak_seconds", minimum=1)
    window = min(total, sec.number("window_seconds", minimum=1))
    soak_limits = gates.SoakLimits(
        max_rss_growth_mb=sec.number("max_rss_growth_mb", minimum=0),
        max_p99_drift=sec.number("max_p99_drift", minimum=1),
        p99_floor_ms=sec.number("p99_floor_ms", minimum=0),
    )
    windows: list[gates.LoadResult] = []
    with clock.check("soak") as chk:
        done = 0.0
        while done < total:
            secs = min(window, total - done)
            result = _step(ctx, generator, running, rate, secs, conns)
            windows.append(result)
            done += secs
            rss = running.rss_mb[-1] if running.rss_mb else 0.0
            ctx.runner.say(f"soak {done:.0f}/{total:.0f} s: {result.describe()}; RSS {rss:.0f} MB")
        found = [f for w in windows for f in gates.breaches(w, limits, "soak")]
        found += gates.soak_findings(windows, running.rss_mb, soak_limits)
        growth = (running.rss_mb[-1] - running.rss_mb[0]) if len(running.rss_mb) > 1 else 0.0
        chk.summary = (
            f"{rate:g} req/s for {total:g} s in {len(windows)} window(s); p99 "
            f"{windows[0].p99_ms:.2f} -> {windows[-1].p99_ms:.2f} ms; RSS change {growth:+.0f} MB"
        )
        chk.status = Status.FAILED if found else Status.PASSED
        clock.findings += found
    record(
        ctx,
        "soak",
        chk.status.value,
        [
            Measurement("soak", "p99_first", windows[0].p99_ms, "ms"),
            Measurement("soak", "p99_last", windows[-1].p99_ms, "ms"),
            Measurement("soak", "rss_growth", growth, "MB"),
        ],
    )
    return clock.result(ctx.name)


def _ramp_markdown(
    tried: list[tuple[float, bool]],
    results: dict[float, gates.LoadResult],
    best: float | None,
    limits: gates.Thresholds,
) -> str:
    head = f"### Stress: highest sustainable rate {best:g} req/s" if best else "### Stress"
    out = [
        head,
        "",
        f"Thresholds: p99 < {limits.p99_ms:g} ms, errors < {100 * limits.error_rate:g}%.",
        "",
        "| rate (req/s) | achieved | p99 (ms) | errors | verdict |",
        "|---|---|---|---|---|",
    ]
    for rate, held in tried:
        r = results[rate]
        out.append(
            f"| {rate:g} | {r.achieved_rate:.0f} | {r.p99_ms:.2f} | "
            f"{100 * r.error_rate:.2f}% | {'held' if held else 'broke'} |"
        )
    return "\n".join(out) + "\n"
