"""Reading criterion's machine-readable output, never its terminal text.

A criterion run writes, per benchmark, `<CRITERION_HOME>/<directory>/new/`:
`benchmark.json` (the id: `full_id`), `sample.json` (`iters` and `times` in ns, one
entry per sample) and `estimates.json` (mean, median, slope with confidence intervals).
The pipeline gives every run its own CRITERION_HOME, so what is found there is exactly
what that run measured. Listing (`<bench exe> --list`) prints `<id>: benchmark` lines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci.bench.stats import per_iteration
from ci.errors import BenchError


@dataclass(frozen=True)
class CriterionRun:
    """One benchmark's samples from one criterion run."""

    id: str
    per_iteration_ns: list[float]  # one value per sample
    mean_ns: float | None  # criterion's own estimate, for reference


def parse_list(output: str) -> list[str]:
    """Benchmark ids from `<criterion bench exe> --list` (`<id>: benchmark` lines)."""
    suffix = ": benchmark"
    return [line[: -len(suffix)] for line in output.splitlines() if line.endswith(suffix)]


def _load(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchError(f"partial criterion output: {path} is missing ({what})") from None
    except (OSError, ValueError) as err:
        raise BenchError(f"unreadable criterion output {path}: {err}") from None


def _number_list(data: Any, key: str, path: Path) -> list[float]:
    values = data.get(key) if isinstance(data, dict) else None
    if not isinstance(values, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        raise BenchError(f"malformed criterion output {path}: {key!r} is not a list of numbers")
    return [float(v) for v in values]


def read_benchmark(directory: Path) -> CriterionRun:
    """The samples of one benchmark directory (`<home>/<dir>/`): its `new/` run."""
    new = directory / "new"
    meta = _load(new / "benchmark.json", "the benchmark's id")
    full_id = meta.get("full_id") if isinstance(meta, dict) else None
    if not isinstance(full_id, str) or not full_id:
        raise BenchError(f"malformed criterion output {new / 'benchmark.json'}: no full_id")
    sample_path = new / "sample.json"
    sample = _load(sample_path, "the measured samples")
    iters = _number_list(sample, "iters", sample_path)
    times = _number_list(sample, "times", sample_path)
    if len(iters) != len(times):
        raise BenchError(f"malformed criterion output {sample_path}: iters and times differ")
    values = per_iteration(iters, times)
    if not values:
        raise BenchError(f"partial criterion output: {sample_path} holds no samples")
    mean: float | None = None
    estimates = new / "estimates.json"
    if estimates.is_file():
        data = _load(estimates, "estimates")
        point = data.get("mean", {}).get("point_estimate") if isinstance(data, dict) else None
        mean = float(point) if isinstance(point, (int, float)) else None
    return CriterionRun(full_id, values, mean)


def read_home(home: Path) -> dict[str, CriterionRun]:
    """Every benchmark criterion wrote under `home`, by id."""
    runs: dict[str, CriterionRun] = {}
    if not home.is_dir():
        return runs
    for meta in sorted(home.glob("**/new/benchmark.json")):
        run = read_benchmark(meta.parent.parent)
        runs[run.id] = run
    return runs


def read_one(home: Path, bench_id: str) -> CriterionRun:
    """The samples of `bench_id` from a run that measured only it; BenchError when the
    run left no (or only partial) output for it."""
    runs = read_home(home)
    if bench_id not in runs:
        found = ", ".join(sorted(runs)) or "nothing"
        raise BenchError(
            f"missing criterion output for {bench_id!r} under {home} (found: {found}); "
            "is the bench built with criterion and not filtered out?"
        )
    return runs[bench_id]
