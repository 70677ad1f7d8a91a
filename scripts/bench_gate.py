#!/usr/bin/env python3
"""Measured properties of the benchmark gate (numbers, not pass/fail):

1. false alarms: N comparisons of identical code (`--base HEAD` on a clean checkout of
   the reference workspace), in each mode; a comparison with any regression row is one;
2. detection: the fixture (tests/fixtures/bench) committed 15% and 5% slower, compared
   with `--base HEAD~1`, N times each, in each mode: how often fixture/spin is flagged;
3. wall time of `nox -s bench -- --base HEAD~1` on the reference workspace (first and
   warm run) against the bench budget.

The machine's 1-minute load average is printed beside every number: wall-clock results
on a shared machine mean little without it.

Usage: python3 scripts/bench_gate.py [--runs N] [--only false-alarms,detection,wall-time]
                                     [--modes wall,instructions]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers import git  # noqa: E402 - the test suite's git with a fixed identity

COST = 4000  # tests/fixtures/bench/src/lib.rs


@dataclass
class Tally:
    """Outcomes of repeated comparisons."""

    flagged: int = 0
    runs: int = 0
    seconds: list[float] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    changes: list[float] = field(default_factory=list)  # every change seen, percent

    def line(self, what: str) -> str:
        load = ""
        if self.loads:
            low, high, mean = min(self.loads), max(self.loads), statistics.mean(self.loads)
            load = f"load {low:.1f}-{high:.1f} (mean {mean:.1f})"
        took = f"{statistics.median(self.seconds):.0f}s/run" if self.seconds else ""
        seen = ""
        if self.changes:
            seen = f"changes {min(self.changes):+.1f}% to {max(self.changes):+.1f}%"
        return f"  {what:<30} {self.flagged:>2}/{self.runs} flagged   {seen}   {took}   {load}"


def bench(workspace: Path, mode: str, args: list[str], scratch: Path, **extra: str) -> dict:
    """One `nox -s bench` run; returns the comparison JSON."""
    out = scratch / "out"
    shutil.rmtree(out, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIPIPE_")}
    target = os.environ.get("CIPIPE_CARGO_TARGET_DIR") or str(ROOT / "target")
    env.update(
        CIPIPE_WORKSPACE=str(workspace),
        CIPIPE_OUTPUT_DIR=str(out),
        CIPIPE_CARGO_TARGET_DIR=target,
        CIPIPE_HISTORY__PATH=str(scratch / "history.sqlite3"),
        CIPIPE_BENCH__WORKTREE=str(scratch / "base-worktree"),
        CIPIPE_BENCH__ON_REGRESSION="warn",
        **extra,
    )
    cmd = [sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "-s", "bench", "--"]
    res = subprocess.run(
        [*cmd, "--mode", mode, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if res.returncode != 0:
        tail = "\n".join((res.stdout + res.stderr).splitlines()[-15:])
        raise SystemExit(f"bench run failed ({workspace}, {mode}, {args}):\n{tail}")
    return json.loads((out / "bench" / "comparison.json").read_text())


def tally(
    tally_: Tally, workspace: Path, mode: str, args: list[str], scratch: Path, name: str | None
) -> None:
    """Run once and count whether it flagged (`name`, or any benchmark when None)."""
    start = time.monotonic()
    data = bench(workspace, mode, args, scratch)
    tally_.seconds.append(time.monotonic() - start)
    tally_.loads.append(os.getloadavg()[0])
    tally_.runs += 1
    rows = [r for r in data["rows"] if name is None or r["name"] == name]
    if any(r["verdict"] == "regression" for r in rows):
        tally_.flagged += 1
    tally_.changes += [r["change"]["percent"] for r in rows if r["change"]]


@contextmanager
def reference_checkout(scratch: Path) -> Iterator[Path]:
    """HEAD of this repository in a clean temporary worktree (the reference workspace)."""
    where = scratch / "reference"
    git(ROOT, "worktree", "add", "--detach", "-q", str(where), "HEAD")
    try:
        yield where
    finally:
        git(ROOT, "worktree", "remove", "--force", str(where))


def fixture_repo(scratch: Path, factor: float) -> Path:
    """The bench fixture committed, then committed again `factor` times slower."""
    repo = scratch / f"fixture-{factor:g}"
    shutil.rmtree(repo, ignore_errors=True)
    # shutil.copy, not copy2: fresh mtimes, so cargo rebuilds it in the shared target dir.
    shutil.copytree(ROOT / "tests" / "fixtures" / "bench", repo, copy_function=shutil.copy)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "fixture")
    lib = repo / "src" / "lib.rs"
    lib.write_text(
        re.sub(
            r"pub const COST: u64 = \d+;",
            f"pub const COST: u64 = {round(COST * factor)};",
            lib.read_text(),
        )
    )
    git(repo, "commit", "-qam", f"x{factor}")
    return repo


def main() -> None:
    # SIGTERM runs the finally blocks too: no temporary worktree is left registered.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--only", default="false-alarms,detection,wall-time")
    parser.add_argument("--modes", default="wall,instructions")
    args = parser.parse_args()
    only = set(args.only.split(","))
    modes = args.modes.split(",")
    print(f"machine: {os.cpu_count()} cores, load now {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        scratch = Path(tmp)
        if "false-alarms" in only:
            print(
                f"false alarms: identical code (--base HEAD), reference workspace, {args.runs} runs"
            )
            with reference_checkout(scratch) as ref:
                for mode in modes:
                    t = Tally()
                    for _ in range(args.runs):
                        tally(t, ref, mode, ["--base", "HEAD"], scratch, None)
                    print(t.line(f"{mode}: comparisons with a regression"), flush=True)
        if "detection" in only:
            print(f"detection: fixture/spin committed slower, --base HEAD~1, {args.runs} runs")
            for factor in (1.15, 1.05):
                repo = fixture_repo(scratch, factor)
                for mode in modes:
                    name = "fixture/spin" if mode == "wall" else "instructions::fixture::spin::cost"
                    t = Tally()
                    for _ in range(args.runs):
                        tally(
                            t, repo, mode, ["--base", "HEAD~1", "--filter", "spin"], scratch, name
                        )
                    print(t.line(f"{mode}: {round((factor - 1) * 100)}% slower"), flush=True)
        if "wall-time" in only:
            print("wall time: nox -s bench -- --base HEAD~1 on the reference workspace")
            with reference_checkout(scratch) as ref:
                for label in ("first run (base side may build)", "warm run"):
                    start = time.monotonic()
                    bench(ref, "wall", ["--base", "HEAD~1"], scratch)
                    took = time.monotonic() - start
                    print(
                        f"  {label:<34} {took:6.1f} s (budget 180 s)   "
                        f"load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
