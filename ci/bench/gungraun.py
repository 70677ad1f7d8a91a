"""Reading gungraun's machine-readable output (instruction counts under callgrind).

A gungraun bench run with `--output-format=json` prints one JSON summary per benchmark
and line on stdout (summary schema v6+): `module_path` (`<file>::<group>::<function>`),
`id` (the `#[bench::id]`, absent for a plain benchmark), and `profiles[]`, one per tool,
whose `data.total.metrics.Ir.values.new` is the instruction count of the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ci.errors import BenchError

METRIC = "Ir"  # callgrind's instructions executed


@dataclass(frozen=True)
class CountRun:
    """One benchmark's instruction count from one gungraun run."""

    id: str
    instructions: float


def _name(summary: dict[str, Any]) -> str:
    module = summary.get("module_path")
    if not isinstance(module, str) or not module:
        raise BenchError("malformed gungraun output: a summary without module_path")
    bench_id = summary.get("id")
    return f"{module}::{bench_id}" if isinstance(bench_id, str) and bench_id else module


def _instructions(summary: dict[str, Any], name: str) -> float:
    for profile in summary.get("profiles") or []:
        if not isinstance(profile, dict) or profile.get("tool") != "Callgrind":
            continue
        metrics = profile.get("data", {}).get("total", {}).get("metrics", {})
        value = metrics.get(METRIC, {}).get("values", {}).get("new")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    raise BenchError(
        f"partial gungraun output for {name}: no callgrind instruction count (Ir) in its summary"
    )


def parse_summaries(stdout: str) -> dict[str, CountRun]:
    """Instruction counts by benchmark name from a `--output-format=json` run's stdout.
    Lines that are not JSON objects (a bench printing to stdout) are ignored."""
    runs: dict[str, CountRun] = {}
    for line in stdout.splitlines():
        text = line.strip()
        if not text.startswith("{"):
            continue
        try:
            summary = json.loads(text)
        except ValueError:
            continue
        if not isinstance(summary, dict) or "profiles" not in summary:
            continue
        name = _name(summary)
        runs[name] = CountRun(name, _instructions(summary, name))
    return runs
