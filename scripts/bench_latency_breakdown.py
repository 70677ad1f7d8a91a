#!/usr/bin/env python3
"""Where the time of `POST /orders` goes under the load session (numbers, not pass/fail).

Runs `nox -s load` (the release binary on real Postgres and Redis, at the configured
rate) `--runs` times and prints, for each run, the client's percentiles and the
service's own per-phase histograms (queueing in the sequencer, market lock, BEGIN,
advisory lock wait, catch-up, matching, write, commit, Redis publish, the whole batch,
and the request as the server saw it), each with the machine's 1-minute load average
at the start and end of the measured run: other work on the machine moves these
figures, so they are only comparable under comparable load.

    python3 scripts/bench_latency_breakdown.py --runs 3 --save after.json
    python3 scripts/bench_latency_breakdown.py --compare before.json after.json
    python3 scripts/bench_latency_breakdown.py --wait-load 1.5 -- --seconds 60

`--wait-load L` waits (up to `--wait-max` seconds) for the load average to fall to L
before each run, and says so when it never did. Arguments after `--` go to the load
session (`--rate`, `--seconds`, `--connections`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ci.loadtest.breakdown import PATH_ORDER, Breakdown, Row, table  # noqa: E402


def wait_for_quiet(limit: float | None, longest: float) -> str:
    """Wait until the 1-minute load average is at most `limit`; what happened, as text."""
    now = os.getloadavg()[0]
    if limit is None or now <= limit:
        return f"load average {now:.2f}"
    deadline = time.monotonic() + longest
    while time.monotonic() < deadline and (now := os.getloadavg()[0]) > limit:
        time.sleep(5)
    if now > limit:
        return f"load average {now:.2f}: still over {limit:g} after waiting {longest:g}s"
    return f"load average {now:.2f} (waited for it to fall to {limit:g})"


def run_load(extra: list[str]) -> dict[str, object]:
    """One `nox -s load` run in its own output folder: its verdict, client result and
    breakdown."""
    with tempfile.TemporaryDirectory(prefix="bench-breakdown-") as out:
        env = {**os.environ, "CIPIPE_OUTPUT_DIR": out, "CIPIPE_CACHE__ENABLED": "false"}
        cmd = [sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "-s", "load"]
        proc = subprocess.run(
            [*cmd, "--", *extra], cwd=ROOT, env=env, capture_output=True, text=True
        )
        folder = Path(out) / "load"
        try:
            client = json.loads((folder / "load.json").read_text())
            split = Breakdown.from_json((folder / "breakdown.json").read_text())
        except (OSError, ValueError) as err:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
            why = f"the load session left no result ({err}):\n" + "\n".join(tail)
            raise SystemExit(why) from None
    return {"passed": proc.returncode == 0, "client": client, "breakdown": asdict(split)}


def describe(run: dict[str, object]) -> list[str]:
    """A run as printed: verdict and client percentiles with the load average, then the
    phase table."""
    client = run["client"]
    split = Breakdown.from_json(json.dumps(run["breakdown"]))
    assert isinstance(client, dict)
    head = (
        f"{'passed' if run['passed'] else 'FAILED'}: {client['achieved_rate']:.0f} req/s, client "
        f"p50 {client['p50_ms']:.2f} ms, p95 {client['p95_ms']:.2f} ms, "
        f"p99 {client['p99_ms']:.2f} ms, {client['requests'] - client['ok']} errors "
        f"[load average {split.load_start:.2f} -> {split.load_end:.2f}]"
    )
    return [head, *table(split, PATH_ORDER)]


def summary(runs: list[dict[str, object]]) -> list[str]:
    """Median client percentiles over the runs, with the load averages they ran under."""
    clients = [r["client"] for r in runs]
    loads = [Breakdown.from_json(json.dumps(r["breakdown"])).load_start for r in runs]
    p50 = statistics.median(c["p50_ms"] for c in clients)  # type: ignore[index]
    p99 = statistics.median(c["p99_ms"] for c in clients)  # type: ignore[index]
    worst = max(c["p99_ms"] for c in clients)  # type: ignore[index]
    return [
        f"{len(runs)} run(s): median client p50 {p50:.2f} ms, median p99 {p99:.2f} ms, "
        f"worst p99 {worst:.2f} ms; load average at the starts "
        + ", ".join(f"{x:.2f}" for x in loads)
    ]


def _rows(run: dict[str, object]) -> dict[str, Row]:
    return {r.phase: r for r in Breakdown.from_json(json.dumps(run["breakdown"])).rows}


def compare(before: list[dict[str, object]], after: list[dict[str, object]]) -> list[str]:
    """Per phase: mean and p99 before and after (medians over each file's runs)."""

    def med(runs: list[dict[str, object]], phase: str, field: str) -> float | None:
        values = [getattr(r[phase], field) for r in map(_rows, runs) if phase in r]
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    def loads(runs: list[dict[str, object]]) -> str:
        starts = [Breakdown.from_json(json.dumps(r["breakdown"])).load_start for r in runs]
        return ", ".join(f"{x:.2f}" for x in starts)

    lines = [
        f"before: load average {loads(before)}; after: load average {loads(after)}",
        f"{'phase':<12} {'mean before':>12} {'mean after':>11} {'p99 before':>11} "
        f"{'p99 after':>10}",
    ]
    for phase in PATH_ORDER:
        cells = [med(before, phase, "mean_ms"), med(after, phase, "mean_ms")]
        cells += [med(before, phase, "p99_ms"), med(after, phase, "p99_ms")]
        if any(c is not None for c in cells):
            a, b, c, d = (ms(x) for x in cells)
            lines.append(f"{phase:<12} {a:>12} {b:>11} {c:>11} {d:>10}")
    return lines


def load_runs(path: Path) -> list[dict[str, object]]:
    try:
        data = json.loads(path.read_text())
        runs = data["runs"]
        for run in runs:
            Breakdown.from_json(json.dumps(run["breakdown"]))
        return list(runs)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SystemExit(f"{path}: not a saved breakdown ({err})") from None


def save(path: Path, runs: list[dict[str, object]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    tmp.replace(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--wait-load", type=float, help="wait for this 1-min load average")
    parser.add_argument("--wait-max", type=float, default=600.0)
    parser.add_argument("--save", type=Path, help="write the runs as JSON (for --compare)")
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("BEFORE", "AFTER"))
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    if args.compare:
        before, after = (load_runs(p) for p in args.compare)
        print("\n".join([*summary(before), *summary(after), *compare(before, after)]))
        return 0
    runs: list[dict[str, object]] = []
    try:
        for i in range(args.runs):
            print(f"== run {i + 1}/{args.runs}: {wait_for_quiet(args.wait_load, args.wait_max)}")
            runs.append(run_load(extra))
            print("\n".join(describe(runs[-1])), flush=True)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        if not runs:
            return 130
    print("\n".join(summary(runs)))
    if args.save:
        save(args.save, runs)
    return 0 if all(r["passed"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
