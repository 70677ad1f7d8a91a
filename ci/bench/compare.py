"""Verdicts: each benchmark's row (base, head, change, confidence, verdict), the
absolute targets (latency per benchmark, peak memory), and the report they make up.

A benchmark is a regression only when it is slower by more than the threshold AND the
slowdown is significant; an improvement is the mirror image. A significant change
within the threshold, a change within noise, a benchmark only head has (new), one only
base has (removed) and one measured without a base are rows too, never errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from ci.bench.stats import Change, Estimate
from ci.errors import ConfigError

WALL = "wall"
INSTRUCTIONS = "instructions"
MODES = (WALL, INSTRUCTIONS)
UNITS = {WALL: "ns", INSTRUCTIONS: "instructions"}


class Verdict(StrEnum):
    """What a row says about its benchmark."""

    REGRESSION = "regression"
    IMPROVEMENT = "improvement"
    WITHIN_THRESHOLD = "within threshold"  # significant, smaller than the threshold
    WITHIN_NOISE = "within noise"  # not significant
    NEW = "new"  # only head has it
    REMOVED = "removed"  # only base has it
    MEASURED = "measured"  # no base to compare with


@dataclass(frozen=True)
class Row:
    """One benchmark of the comparison."""

    name: str
    unit: str  # "ns" or "instructions"
    base: Estimate | None
    head: Estimate | None
    change: Change | None
    verdict: Verdict
    peak_rss: int | None = None  # bytes: the largest head process running it
    breaches: tuple[str, ...] = ()  # absolute targets it missed, one line each

    def to_dict(self) -> dict[str, Any]:
        """The row in the JSON comparison."""

        def est(e: Estimate | None) -> dict[str, float] | None:
            return None if e is None else {"value": e.value, "low": e.low, "high": e.high}

        change = None
        if self.change is not None:
            change = {
                "percent": round(self.change.percent, 4),
                "low_percent": round(self.change.low * 100, 4),
                "high_percent": round(self.change.high * 100, 4),
                "significant": self.change.significant,
            }
        return {
            "name": self.name,
            "unit": self.unit,
            "base": est(self.base),
            "head": est(self.head),
            "change": change,
            "verdict": self.verdict.value,
            "peak_rss_bytes": self.peak_rss,
            "breaches": list(self.breaches),
        }


def verdict_of(change: Change, threshold: float) -> Verdict:
    """The verdict of a measured change; `threshold` is a fraction (0.10 = 10%)."""
    if not change.significant:
        return Verdict.WITHIN_NOISE
    if change.ratio > threshold:
        return Verdict.REGRESSION
    if change.ratio < -threshold:
        return Verdict.IMPROVEMENT
    return Verdict.WITHIN_THRESHOLD


def row(
    name: str,
    unit: str,
    base: Estimate | None,
    head: Estimate | None,
    change: Change | None,
    threshold: float,
    *,
    compared: bool,
) -> Row:
    """A row; `compared` says whether this run had a base side at all."""
    if head is None:
        verdict = Verdict.REMOVED
    elif base is None:
        verdict = Verdict.NEW if compared else Verdict.MEASURED
    elif change is None:
        verdict = Verdict.MEASURED
    else:
        verdict = verdict_of(change, threshold)
    return Row(name, unit, base, head, change, verdict)


# --- absolute targets ----------------------------------------------------------------
_TIME_UNITS = {"ns": 1.0, "us": 1e3, "µs": 1e3, "μs": 1e3, "ms": 1e6, "s": 1e9}
_COUNT_UNITS = {"instructions": 1.0, "ir": 1.0}
_BYTE_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_TARGET = re.compile(
    r"^(?P<name>.+?)\s*<=?\s*(?P<num>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[A-Za-zµμ]+)$"
)


@dataclass(frozen=True)
class Target:
    """`name < limit unit`: head's statistic (latency, instructions) or peak RSS of the
    benchmark must stay below `limit` (ns, instructions or bytes)."""

    name: str
    limit: float
    unit: str  # "ns", "instructions" or "bytes"
    text: str


def parse_target(text: str, key: str, *, memory: bool) -> Target:
    """One `[bench] latency_targets` / `memory_limits` entry, e.g. `risk/check_pass <
    50ns`, `book/insert < 900 instructions`, `book/insert < 64MiB`."""
    m = _TARGET.match(text.strip())
    units = _BYTE_UNITS if memory else {**_TIME_UNITS, **_COUNT_UNITS}
    unit = m["unit"].lower() if m else ""
    if unit not in units:
        # µs is not lower-cased the same on every platform: accept its spelling as is.
        unit = m["unit"] if m and m["unit"] in units else ""
    if not m or not unit:
        example = "book/insert < 64MiB" if memory else "risk/check_pass < 50ns"
        allowed = ", ".join(units)
        env = "CIPIPE_BENCH__" + key.upper()
        raise ConfigError(
            f"[tool.pipeline] bench.{key} (or ${env}): cannot read {text!r}: "
            f"expected 'NAME < NUMBER UNIT' with a unit of {allowed}, e.g. {example!r}"
        )
    value = float(m["num"]) * units[unit]
    kind = "bytes" if memory else ("instructions" if unit in _COUNT_UNITS else "ns")
    return Target(m["name"].strip(), value, kind, text.strip())


def parse_targets(entries: Iterable[str], key: str, *, memory: bool) -> list[Target]:
    """Every entry of a targets list; a benchmark named twice is a ConfigError."""
    targets = [parse_target(e, key, memory=memory) for e in entries]
    seen: set[str] = set()
    for t in targets:
        if t.name in seen:
            raise ConfigError(f"[tool.pipeline] bench.{key}: {t.name!r} has two limits")
        seen.add(t.name)
    return targets


def unknown_targets(targets: Sequence[Target], names: Iterable[str]) -> list[str]:
    """Targets naming no benchmark of the workspace (a renamed benchmark must not make a
    target silently stop applying)."""
    known = set(names)
    return [t.name for t in targets if t.name not in known]


def apply_targets(
    rows: Sequence[Row], latency: Sequence[Target], memory: Sequence[Target], mode: str
) -> list[Row]:
    """Rows with their target breaches filled in. Latency targets in time units apply in
    wall mode, those in instructions in instruction mode; memory limits apply to the
    peak RSS measured in wall mode."""
    unit = UNITS[mode]
    by_name = {t.name: t for t in latency if t.unit == unit}
    mem = {t.name: t for t in memory} if mode == WALL else {}
    out = []
    for r in rows:
        breaches: list[str] = []
        t = by_name.get(r.name)
        if t is not None and r.head is not None and r.head.value > t.limit:
            breaches.append(
                f"{r.name}: {fmt_value(r.head.value, unit)} exceeds its latency target "
                f"{fmt_value(t.limit, unit)} ({t.text})"
            )
        m = mem.get(r.name)
        if m is not None and r.peak_rss is not None and r.peak_rss > m.limit:
            breaches.append(
                f"{r.name}: peak RSS {fmt_bytes(r.peak_rss)} exceeds its memory limit "
                f"{fmt_bytes(m.limit)} ({m.text})"
            )
        out.append(replace(r, breaches=tuple(breaches)) if breaches else r)
    return out


# --- formatting ----------------------------------------------------------------------
def fmt_time(ns: float) -> str:
    """57.1 ns, 1.23 µs, 4.56 ms, 1.20 s."""
    for limit, div, unit in ((1e3, 1.0, "ns"), (1e6, 1e3, "µs"), (1e9, 1e6, "ms")):
        if abs(ns) < limit:
            return f"{ns / div:.3g} {unit}"
    return f"{ns / 1e9:.3g} s"


def fmt_count(n: float) -> str:
    """52,012 instructions."""
    return f"{round(n):,}"


def fmt_value(value: float, unit: str) -> str:
    """A value in the benchmark's unit."""
    return fmt_time(value) if unit == "ns" else f"{fmt_count(value)} instructions"


def fmt_axis(unit: str) -> Callable[[float], str]:
    """Short labels for a chart's axis: 4.2 ns, 10.3 µs; counts as 52k instr."""
    if unit == "ns":
        return fmt_time

    def compact(value: float) -> str:
        for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= limit:
                return f"{value / limit:.3g}{suffix} {unit[:5]}"
        return f"{value:.3g} {unit[:5]}"

    return compact


def fmt_bytes(n: float) -> str:
    """12.3 MiB."""
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


def fmt_percent(fraction: float) -> str:
    """+12.3%."""
    return f"{fraction * 100:+.1f}%"


@dataclass
class Report:
    """The whole comparison: settings that shaped it, and its rows."""

    mode: str
    threshold: float  # fraction
    on_regression: str  # "warn" | "fail"
    confidence: float
    rows: list[Row] = field(default_factory=list)
    base_ref: str | None = None
    base_commit: str | None = None
    head_commit: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def regressions(self) -> list[Row]:
        """Rows whose verdict is regression."""
        return [r for r in self.rows if r.verdict is Verdict.REGRESSION]

    @property
    def breaches(self) -> list[str]:
        """Every missed absolute target, one line each."""
        return [b for r in self.rows for b in r.breaches]

    def count(self, verdict: Verdict) -> int:
        """How many rows have `verdict`."""
        return sum(r.verdict is verdict for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        """The JSON comparison written beside the stage result."""
        return {
            "mode": self.mode,
            "threshold_percent": self.threshold * 100,
            "on_regression": self.on_regression,
            "confidence": self.confidence,
            "base_ref": self.base_ref,
            "base_commit": self.base_commit,
            "head_commit": self.head_commit,
            "settings": self.settings,
            "rows": [r.to_dict() for r in self.rows],
            "regressions": [r.name for r in self.regressions],
            "breaches": self.breaches,
        }
