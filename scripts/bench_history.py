#!/usr/bin/env python3
"""Benchmarks of the history store (numbers, not pass/fail), on SQLite and on a real
Postgres provisioned by the pipeline (local binaries):

1. open: open_store (connect, version check, nothing to migrate);
2. record: one run with 50 measurements (one transaction, durable on return);
3. series: a 500-point series of one benchmark on main, in a store holding 500 runs x
   50 measurements (25,000 rows) plus 500 runs on other branches;
4. baseline: the measurements of one suite at one commit in that store;
5. export / import of that whole store (what a fresh CI runner pays at start and end
   when history persists as an artifact).

Usage: python3 scripts/bench_history.py [--reps 30] [--only sqlite|postgres]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ci import settings  # noqa: E402
from ci.history import HistoryStore, Machine, Measurement, RunInfo, open_store  # noqa: E402
from ci.services import provision  # noqa: E402

T0 = datetime(2024, 1, 1, tzinfo=UTC)
BOX = Machine("bench-box", "bench box")
NAMES = [f"group{g}/case{c}" for g in range(10) for c in range(5)]  # 50 benchmarks


def a_run(i: int, branch: str = "main") -> RunInfo:
    start = T0 + timedelta(minutes=i)
    return RunInfo(
        "bench",
        f"{i:040x}",
        branch,
        str(i),
        BOX,
        start,
        start + timedelta(seconds=90),
        "passed",
        {"cargo": "1.88.0"},
        {"mode": "wall"},
    )


def values(i: int) -> list[Measurement]:
    return [
        Measurement("bench.wall", n, 50.0 + (i % 7), "ns", {"low": 49.0, "high": 51.0})
        for n in NAMES
    ]


def timed(reps: int, work: Callable[[int], object]) -> tuple[float, float]:
    """Median and max in milliseconds."""
    samples = []
    for i in range(reps):
        start = time.perf_counter()
        work(i)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), max(samples)


def bench(name: str, cfg: settings.Settings, empty: settings.Settings, reps: int) -> None:
    def open_once(_: int) -> None:
        with open_store(cfg):
            pass

    print(f"\n{name}")
    with open_store(cfg) as store:  # creates and migrates
        pass
    rows = [("open_store", *timed(reps, open_once))]
    with open_store(cfg) as store:
        rows.append(("record 1 run + 50 measurements", *timed(reps, lambda i: record(store, i))))
        fill(store, reps)
        rows.append(("series, 500 points (fresh stats)", *timed(reps, lambda _: check(store))))
        store.optimize()  # what autovacuum (or an import) does
        rows.append(("series, 500 points", *timed(reps, lambda _: check(store))))
        rows.append(
            (
                "baseline, 50 measurements",
                *timed(reps, lambda i: store.baseline("bench", "bench.wall", f"{i + 100:040x}")),
            )
        )
        buf = io.StringIO()
        start = time.perf_counter()
        store.export(buf)
        exported = (time.perf_counter() - start) * 1000
    for label, median, worst in rows:
        print(f"  {label:34s} median {median:8.2f} ms   max {worst:8.2f} ms")
    size = len(buf.getvalue()) / 1e6
    print(f"  {'export (1030 runs, ' + f'{size:.1f} MB)':34s} {exported:8.0f} ms")
    with open_store(empty) as fresh:
        start = time.perf_counter()
        fresh.import_(io.StringIO(buf.getvalue()))
        print(
            f"  {'import into an empty store':34s} {(time.perf_counter() - start) * 1000:8.0f} ms"
        )


def record(store: HistoryStore, i: int) -> None:
    store.record(a_run(10_000 + i, branch="bench-record"), values(i))


def fill(store: HistoryStore, reps: int) -> None:
    start = time.perf_counter()
    for i in range(500):
        store.record(a_run(i), values(i))
        store.record(a_run(i, branch=f"pr-{i}"), values(i))
    print(f"  (filled 1000 runs x 50 measurements in {time.perf_counter() - start:.1f}s)")


def check(store: HistoryStore) -> None:
    points = store.series("bench.wall", NAMES[17], branch="main", limit=500)
    assert len(points) == 500, len(points)


def sqlite_at(path: Path) -> settings.Settings:
    return settings.load(ROOT, {"CIPIPE_HISTORY__PATH": str(path)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--only", choices=("sqlite", "postgres"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        if args.only != "postgres":
            path = Path(tmp) / "history.sqlite3"
            bench("SQLite", sqlite_at(path), sqlite_at(Path(tmp) / "empty.sqlite3"), args.reps)
            print(f"  file size {path.stat().st_size / 1e6:.1f} MB")
        if args.only != "sqlite":
            cfg = settings.load(ROOT, {"CIPIPE_SERVICES__BACKEND": "local"})
            with provision(cfg, ["postgres"]) as services:
                url = services["postgres"].url
                bench(
                    "Postgres 15 (local, loopback)",
                    settings.load(ROOT, {"CIPIPE_HISTORY__URL": url}),
                    settings.load(
                        ROOT, {"CIPIPE_HISTORY__URL": url, "CIPIPE_HISTORY__PG_SCHEMA": "empty"}
                    ),
                    args.reps,
                )


if __name__ == "__main__":
    main()
