#!/usr/bin/env python3
"""The coverage stage's wall time against its budget (numbers, not pass/fail):

1. cold: an empty coverage target dir (every dependency built again with tarpaulin's
   flags), as on a runner without a cache;
2. warm: the same again with nothing changed (the usual local and cached-CI case),
   median of N runs.

Each run is the real `nox -s coverage` (services, tarpaulin, gates, history) on the
workspace, with its own output folder and history file. The machine may be shared:
the load average before and after each run is printed beside it.

Usage: python3 scripts/bench_coverage.py [--runs N] [--workspace PATH] [--no-cold]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ci import settings  # noqa: E402


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}"


def run(env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    """One `nox -s coverage`: wall seconds and the stage result."""
    out = Path(env["CIPIPE_OUTPUT_DIR"])
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "-s", "coverage"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=False,
    )
    wall = time.perf_counter() - start
    return wall, json.loads((out / "coverage.json").read_text())


def describe(label: str, wall: float, result: dict[str, Any], before: str) -> str:
    checks = {c["name"]: c for c in result["checks"]}
    tests = checks.get("tests", {}).get("duration_s", 0.0)
    return (
        f"  {label:<6} {wall:7.1f} s wall (stage {result['duration_s']:.1f} s, tarpaulin "
        f"{tests:.1f} s, budget {result['budget_s']:.0f} s): {result['status']}, total "
        f"{result['outputs'].get('total', '?')}%   [{before} -> {load()}]"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="warm runs (median)")
    parser.add_argument("--workspace", type=Path, default=None)
    parser.add_argument("--no-cold", action="store_true", help="skip the cold run")
    args = parser.parse_args()
    cfg = settings.load(ROOT)
    target = cfg.cargo_target_dir or (args.workspace or cfg.workspace) / "target"
    scratch = Path(tempfile.mkdtemp(prefix="bench-coverage-"))
    subdir = "coverage" if args.no_cold else f"coverage-bench-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "CIPIPE_OUTPUT_DIR": str(scratch / "out"),
        "CIPIPE_HISTORY__PATH": str(scratch / "history.sqlite3"),
        "CIPIPE_COVERAGE__TARGET_SUBDIR": subdir,
        "CIPIPE_CACHE__ENABLED": "false",  # measure the stage, never a replay of it
        "CARGO_TERM_COLOR": "never",
    }
    if args.workspace:
        env["CIPIPE_WORKSPACE"] = str(args.workspace.resolve())
    print(f"coverage stage on {args.workspace or cfg.workspace} ({os.cpu_count()} cores):")
    try:
        if not args.no_cold:
            before = load()
            wall, result = run(env)
            print(describe("cold", wall, result, before))
        else:
            run(env)  # make sure it is warm
        walls = []
        for i in range(args.runs):
            before = load()
            wall, result = run(env)
            walls.append(wall)
            print(describe(f"warm{i + 1}", wall, result, before))
        print(f"  warm median {statistics.median(walls):.1f} s")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if not args.no_cold:
            shutil.rmtree(target / subdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
