#!/usr/bin/env python3
"""The stage cache, measured: how long a warm no-change `invoke ci` takes, and which stages
a change of one security setting replays. Numbers, not pass/fail.

  1. fill      `invoke ci` once (cold unless the cache already holds this tree's results)
  2. no change `invoke ci` --runs times: wall time of each, median, stages replayed
  3. security  `invoke ci` with only CIPIPE_SECURITY__WARN_AGE_DAYS changed (to a value no
               earlier run used): which stages were replayed and which ran (lint, unit,
               integration, bench and coverage should replay; security runs)

Wall and CPU seconds are printed: on a loaded machine the wall time is mostly waiting for
a core. PYTHONDONTWRITEBYTECODE is dropped (as on a developer machine) unless
--no-bytecode is given.

The workspace is the project's own ([tool.pipeline] workspace) unless --project names
another checkout. Without internet the advisory database must be a local checkout:
--advisory-db PATH (tests/helpers.py unpack_real_advisory_db makes one from the snapshot).

Usage: python3 scripts/bench_cache.py [--project DIR] [--runs 5] [--advisory-db PATH]
       [--set CIPIPE_TIMEOUTS__COVERAGE=1800 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def invoke_ci(project: Path, env: dict[str, str]) -> tuple[float, int, str]:
    """(wall seconds, exit code, output) of one `invoke ci` in `project`; the CPU seconds
    it used (all its processes) go to CPU_S."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "ci"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU_S.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return took, proc.returncode, proc.stdout + proc.stderr


CPU_S: list[float] = []


def stages(out_dir: Path) -> dict[str, str]:
    """Each stage's outcome in the last run: "replayed", or its status when it ran."""
    found = {}
    for path in sorted(out_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except ValueError:
            continue
        if isinstance(data, dict) and "stage" in data and "status" in data:
            found[data["stage"]] = "replayed" if data.get("cached") else data["status"]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--advisory-db", type=Path)
    parser.add_argument("--no-bytecode", action="store_true", help="keep PYTHONDONTWRITEBYTECODE")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="CIPIPE_KEY=VALUE",
        help="a setting for every run (e.g. a longer hard limit on a loaded machine)",
    )
    args = parser.parse_args()
    project = args.project.resolve()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIPIPE_")}
    env["CIPIPE_PROGRESS"] = "plain"
    if not args.no_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # as on a developer machine: .pyc reused
    if os.environ.get("CIPIPE_CARGO_TARGET_DIR"):
        env["CIPIPE_CARGO_TARGET_DIR"] = os.environ["CIPIPE_CARGO_TARGET_DIR"]
    if args.advisory_db:
        env["CIPIPE_SECURITY__ADVISORY_DB"] = str(args.advisory_db.resolve())
    for item in args.set:
        name, _, value = item.partition("=")
        env[name] = value
    sys.path.insert(0, str(project))
    from ci.settings import load

    out_dir = load(project, env).out_dir

    took, code, output = invoke_ci(project, env)
    print(f"fill: {took:.2f} s, exit {code}: {stages(out_dir)}")
    if code != 0:
        print(output[-3000:])
    times = []
    for i in range(args.runs):
        took, code, _ = invoke_ci(project, env)
        times.append(took)
        replayed = sum(v == "replayed" for v in stages(out_dir).values())
        print(
            f"no change #{i + 1}: {took:.3f} s wall, {CPU_S[-1]:.3f} s CPU, exit {code}, "
            f"{replayed} stages replayed: {stages(out_dir)}"
        )
    cpu = CPU_S[-len(times) :]
    print(
        f"no change: wall median {statistics.median(times):.3f} s (min {min(times):.3f}, "
        f"max {max(times):.3f}); CPU median {statistics.median(cpu):.3f} s over "
        f"{len(times)} runs; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    # a value no earlier run used (an earlier run with it would be replayed, rightly)
    changed = {**env, "CIPIPE_SECURITY__WARN_AGE_DAYS": str(8 + int(time.time()) % 100)}
    took, code, _ = invoke_ci(project, changed)
    print(f"security setting changed: {took:.2f} s, exit {code}: {stages(out_dir)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
