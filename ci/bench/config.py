"""The bench stage's options: `[tool.pipeline.bench]` (schema in ci/defaults.toml),
overridden by the stage's arguments (`nox -s bench -- --base main --mode instructions`).
Every malformed value is one ConfigError line naming the key or the flag."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ci.bench.compare import MODES, Target, parse_targets
from ci.bench.measure import Timing
from ci.errors import ConfigError
from ci.settings import Settings


@dataclass(frozen=True)
class BenchConfig:
    """Everything one bench run is configured with."""

    mode: str
    base: str | None
    threshold: float  # fraction
    on_regression: str  # warn | fail
    confidence: float
    quantile: float
    instruction_noise: float  # fraction
    rounds: int  # per side, with a base
    timing: Timing
    latency_targets: list[Target]
    memory_limits: list[Target]
    worktree: Path | None
    features: list[str]
    name_filter: str | None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"nox -s bench: {message} (see `nox -s bench -- --help`)")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        if message:
            raise ConfigError(message.strip())
        raise ConfigError("nox -s bench: usage printed above; nothing was run")


def parser() -> argparse.ArgumentParser:
    """The stage's arguments (after `--`)."""
    p = _Parser(prog="nox -s bench --", add_help=True, allow_abbrev=False)
    p.add_argument("--base", help="git ref to compare with (built in a temporary worktree)")
    p.add_argument("--mode", choices=MODES, help="wall (criterion) or instructions (gungraun)")
    p.add_argument("--filter", dest="name_filter", help="only benchmarks whose name contains this")
    p.add_argument("--rounds", type=int, help="interleaved rounds per benchmark and side")
    p.add_argument("--warm-up", type=float, help="criterion warm-up seconds per run")
    p.add_argument("--measurement-time", type=float, help="criterion measurement seconds per run")
    p.add_argument("--sample-size", type=int, help="criterion samples per run (>= 10)")
    p.add_argument("--threshold", type=float, help="regression threshold in percent")
    p.add_argument("--on-regression", choices=("warn", "fail"), help="warn or fail on regressions")
    return p


def _positive(value: float, what: str, minimum: float = 0.0) -> float:
    if not value > minimum:
        raise ConfigError(f"{what} must be greater than {minimum:g}, got {value:g}")
    return value


def load(settings: Settings, posargs: Sequence[str]) -> BenchConfig:
    """The configuration of this run; ConfigError (one line) for any bad value."""
    args = parser().parse_args(list(posargs))
    cfg = settings.section("bench")
    mode = args.mode or cfg.choice("mode", MODES)
    base = args.base if args.base is not None else (cfg.text("base").strip() or None)
    threshold = args.threshold if args.threshold is not None else cfg.number("threshold", minimum=0)
    if threshold < 0 or threshold != threshold:
        raise ConfigError(f"--threshold must be a percentage of 0 or more, got {threshold:g}")
    confidence = cfg.number("confidence")
    if not 0.5 <= confidence < 1.0:
        raise ConfigError(
            "[tool.pipeline] bench.confidence (or $CIPIPE_BENCH__CONFIDENCE): "
            f"expected a level between 0.5 and 1, got {confidence:g}"
        )
    q = cfg.number("quantile", minimum=0)
    if q > 0.5:
        raise ConfigError(
            "[tool.pipeline] bench.quantile (or $CIPIPE_BENCH__QUANTILE): expected 0 to 0.5 "
            f"(a low quantile: interference only adds time), got {q:g}"
        )
    rounds = args.rounds if args.rounds is not None else cfg.whole("rounds", minimum=1)
    sample_size = (
        args.sample_size if args.sample_size is not None else cfg.whole("sample_size", minimum=10)
    )
    if rounds < 1:
        raise ConfigError(f"--rounds must be at least 1, got {rounds}")
    if sample_size < 10:
        raise ConfigError(
            f"--sample-size must be at least 10 (criterion's minimum), got {sample_size}"
        )
    warm_up = args.warm_up if args.warm_up is not None else cfg.number("warm_up", minimum=0)
    measurement = (
        args.measurement_time
        if args.measurement_time is not None
        else cfg.number("measurement_time", minimum=0.01)
    )
    _positive(warm_up, "the warm-up time (seconds)")
    _positive(measurement, "the measurement time (seconds)")
    return BenchConfig(
        mode=mode,
        base=base,
        threshold=threshold / 100.0,
        on_regression=args.on_regression or cfg.choice("on_regression", ("warn", "fail")),
        confidence=confidence,
        quantile=q,
        instruction_noise=cfg.number("instruction_noise", minimum=0) / 100.0,
        rounds=rounds,
        timing=Timing(warm_up, measurement, sample_size),
        latency_targets=parse_targets(
            cfg.strings("latency_targets"), "latency_targets", memory=False
        ),
        memory_limits=parse_targets(cfg.strings("memory_limits"), "memory_limits", memory=True),
        worktree=cfg.path("worktree"),
        features=cfg.strings("features"),
        name_filter=args.name_filter or None,
    )
