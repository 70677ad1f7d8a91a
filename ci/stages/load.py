"""load: the release binary on real Postgres and Redis, driven at a fixed rate for a
fixed time by the workspace's load generator, gated on `[tool.pipeline.load]` (defaults
from the specification's alerting: p99 under 10 ms, errors under 1 %).

Options: `nox -s load -- --rate 800 --seconds 60`. Fault switches of the service under
test pass through the environment (e.g. `TS_FAULT_LATENCY_MS=20 nox -s load`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from ci.contract import Clock, StageContext
from ci.errors import ConfigError, PipelineError, ServiceError
from ci.history import Measurement, current_context, open_store
from ci.loadtest import breakdown, gates
from ci.loadtest.service import Running, build, generate, serve
from ci.result import Finding, StageResult, Status, atomic_write


def _args(posargs: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nox -s load --", add_help=False)
    parser.add_argument("--rate", type=float)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--connections", type=int)
    args, rest = parser.parse_known_args(list(posargs))
    if rest:
        raise ConfigError(
            f"load: unknown argument(s) {' '.join(rest)}; use --rate, --seconds, --connections"
        )
    return args


def thresholds(ctx: StageContext, section: str) -> gates.Thresholds:
    """The gate's limits from `[tool.pipeline.<section>]`."""
    sec = ctx.settings.section(section)
    return gates.Thresholds(
        p99_ms=sec.number("p99_ms", minimum=0.001),
        error_rate=sec.number("error_rate", minimum=0) / 100,
        min_rate_ratio=sec.number("min_rate_ratio", minimum=0),
        max_rss_mb=sec.number("max_rss_mb", minimum=0),
    )


def record(ctx: StageContext, kind: str, status: str, values: list[Measurement]) -> None:
    """This run's figures into the history store (a store error is a warning here: the
    verdict stands on its own)."""
    info = current_context(ctx.settings, kind)
    try:
        with open_store(ctx.settings) as store:
            store.record(info.finished(status), values)
    except PipelineError as err:  # HistoryError: one line naming the store
        ctx.runner.say(f"warning: not recorded in the history store: {err}")


def measurements(suite: str, result: gates.LoadResult) -> list[Measurement]:
    """The load figures as history measurements."""
    return [
        Measurement(suite, "p50", result.p50_ms, "ms"),
        Measurement(suite, "p95", result.p95_ms, "ms"),
        Measurement(suite, "p99", result.p99_ms, "ms"),
        Measurement(suite, "throughput", result.achieved_rate, "req/s"),
        Measurement(suite, "error_rate", 100 * result.error_rate, "percent"),
        Measurement(suite, "peak_rss", result.peak_rss_mb, "MB"),
    ]


def run(ctx: StageContext) -> StageResult:
    """Drive the service at the configured rate and gate on the thresholds."""
    sec = ctx.settings.section("load")
    args = _args(ctx.posargs)
    rate = args.rate or sec.number("rate", minimum=1)
    seconds = args.seconds or sec.number("seconds", minimum=1)
    conns = args.connections or sec.whole("connections", minimum=1)
    limits = thresholds(ctx, "load")
    clock = Clock()
    binaries = build(ctx, sec.text("generator"))
    with (
        clock.check("load") as chk,
        serve(
            ctx, binaries.server, startup_timeout=sec.number("startup_timeout", minimum=1)
        ) as running,
    ):
        warmup = sec.number("warmup_seconds", minimum=0)
        if warmup:
            generate(ctx, binaries.generator, running, rate, warmup, conns)
        ctx.runner.say(f"load: {rate:g} req/s for {seconds:g} s on {conns} connections")
        before = _scrape(running, sec.text("metrics_path"))
        load_start = os.getloadavg()[0]
        raw = generate(ctx, binaries.generator, running, rate, seconds, conns)
        load = (load_start, os.getloadavg()[0])
        after = _scrape(running, sec.text("metrics_path"))
        split = _breakdown(before, after, _route(sec.text("route")), load)
        try:
            result = gates.parse_result(raw)
        except ValueError as err:
            raise ServiceError(f"load generator output unreadable: {err}") from None
        result = gates.LoadResult(**{**result.__dict__, "peak_rss_mb": running.peak_rss_mb})
        ctx.runner.say(
            f"load: {result.describe()}; peak RSS {result.peak_rss_mb:.0f} MB; "
            f"load average {load[0]:.2f} -> {load[1]:.2f}"
        )
        for line in breakdown.table(split, breakdown.PATH_ORDER):
            ctx.runner.say(f"load: {line}")
        found = gates.breaches(result, limits)
        chk.status = Status.FAILED if found else Status.PASSED
        chk.summary = result.describe()
        clock.findings += found
    markdown = write_report(ctx, result, limits, found, split)
    values = [*measurements("load", result), Measurement("load", "loadavg_1m", load[0], "load")]
    record(ctx, "load", chk.status.value, values)
    return clock.result(ctx.name, {"markdown": str(markdown)})


def write_report(
    ctx: StageContext,
    result: gates.LoadResult,
    limits: gates.Thresholds,
    found: list[Finding],
    split: breakdown.Breakdown | None = None,
) -> Path:
    """Write `load.md` (the step summary's section), `load.json` and, with the run's
    breakdown, `breakdown.json` into the stage's artifacts, masked: a finding's message
    may quote what the service or generator said."""
    markdown = ctx.artifacts_dir / "load.md"
    atomic_write(markdown, ctx.runner.redact(_markdown(result, limits, found, split)))
    atomic_write(ctx.artifacts_dir / "load.json", ctx.runner.redact(_json(result, split)))
    if split is not None:
        atomic_write(ctx.artifacts_dir / "breakdown.json", split.to_json())
    return markdown


def _scrape(running: Running, path: str) -> str | None:
    """The service's metrics text now (None: no metrics path configured, or unreadable)."""
    return breakdown.scrape(f"{running.url}{path}") if path else None


def _route(text: str) -> tuple[str, str]:
    """`POST /orders` -> ("/orders", "POST")."""
    method, _, path = text.strip().partition(" ")
    if not path.strip().startswith("/"):
        raise ConfigError(f"[tool.pipeline.load] route must be 'METHOD /path', got {text!r}")
    return path.strip(), method.upper()


def _breakdown(
    before: str | None, after: str | None, route: tuple[str, str], load: tuple[float, float]
) -> breakdown.Breakdown:
    if before is None or after is None:
        return breakdown.Breakdown((), None, round(load[0], 2), round(load[1], 2))
    return breakdown.breakdown(before, after, route, load)


def _json(result: gates.LoadResult, split: breakdown.Breakdown | None) -> str:
    import json

    data = {**result.__dict__, "error_rate": result.error_rate}
    if split is not None:
        data |= {"load_start": split.load_start, "load_end": split.load_end}
    return json.dumps(data, indent=2) + "\n"


def _limit(value: float, unit: str) -> str:
    return f"< {value:g} {unit}" if value else ""


def _markdown(
    result: gates.LoadResult,
    limits: gates.Thresholds,
    found: list[Finding],
    split: breakdown.Breakdown | None,
) -> str:
    verdict = "failed" if found else "passed"
    rows = [
        ("rate", f"{result.achieved_rate:.0f} req/s", f"target {result.target_rate:.0f}"),
        ("p50", f"{result.p50_ms:.2f} ms", ""),
        ("p95", f"{result.p95_ms:.2f} ms", ""),
        ("p99", f"{result.p99_ms:.2f} ms", f"< {limits.p99_ms:g} ms"),
        ("errors", f"{100 * result.error_rate:.2f}%", f"< {100 * limits.error_rate:g}%"),
        ("peak RSS", f"{result.peak_rss_mb:.0f} MB", _limit(limits.max_rss_mb, "MB")),
    ]
    out = [f"### Load test: {verdict}", "", "| measure | value | limit |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    out += [f"- {f.message}" for f in found]
    if split is not None and split.rows:
        out += ["", "Where the time went (the service's histograms):", "", "```"]
        out += [*breakdown.table(split, breakdown.PATH_ORDER), "```"]
    elif split is not None:
        out += ["", f"Load average (1 min): {split.load_start:.2f} -> {split.load_end:.2f}."]
    return "\n".join(out) + "\n"
