#!/usr/bin/env python3
"""What masking costs on the cache's fast path. Numbers, not pass/fail.

  replay      StageCache.replay of an entry with a JUnit report of N test cases, with and
              without the redactor (a replay now masks the result and its text artifacts)
  console     MaskedStream writing long lines without a newline (the 64 KiB flush now
              holds back a possible secret's start), with and without secrets

Each figure: the median of --runs trials and the range of the middle 90 %.

Usage: python3 scripts/bench_replay.py [--runs 30] [--cases 2000]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ci.cache import StageCache  # noqa: E402
from ci.cache.store import CacheStore  # noqa: E402
from ci.console import MaskedStream  # noqa: E402
from ci.redact import Redactor  # noqa: E402
from ci.result import StageResult, Status  # noqa: E402
from ci.settings import load  # noqa: E402

SECRETS = [f"ghp_{i:02d}PLANTEDtoken0123456789abcdef" for i in range(20)]


def spread(samples: list[float]) -> str:
    ordered = sorted(samples)
    lo, hi = ordered[int(0.05 * len(ordered))], ordered[int(0.95 * (len(ordered) - 1))]
    middle = f"{lo * 1000:.2f}-{hi * 1000:.2f}"
    return f"median {statistics.median(ordered) * 1000:8.2f} ms  (90 %: {middle})"


def trials(runs: int, once: Callable[[], None]) -> list[float]:
    return timeit.repeat(once, number=1, repeat=runs)


def bench_replay(tmp: Path, runs: int, cases: int) -> None:
    junit = tmp / "junit.xml"
    body = "".join(
        f'<testcase classname="core::book" name="t{i}" time="0.001"/>' for i in range(cases)
    )
    junit.write_text(f'<?xml version="1.0"?><testsuites><testsuite>{body}</testsuite></testsuites>')
    store = CacheStore(tmp / "cache")
    result = StageResult("unit", Status.PASSED, 40.0, 120, "tests: 2000 passed")
    result.artifacts = {"junit": str(junit)}
    store.save("unit", "k", result.to_dict(), {"w": "1"}, {"junit": junit}, run_id="r", commit="c")
    entry = store.lookup("unit", "k")
    assert entry is not None
    cache = StageCache(load(ROOT, {"CIPIPE_WORKSPACE": str(tmp)}), store)
    size = junit.stat().st_size / 1024
    print(f"replay of a unit entry, JUnit {cases} cases ({size:.0f} KiB):")
    for label, redact in (
        ("  no redactor      ", None),
        ("  20 secrets masked", Redactor(SECRETS)),
    ):

        def once(redact: Redactor | None = redact) -> None:
            cache.replay(entry, tmp / "out", 120, time.monotonic(), redact=redact)

        print(label, spread(trials(runs, once)))


def bench_console(runs: int) -> None:
    chunk = "x" * 4096
    print("console: 4 MiB in 4 KiB writes, no newline:")
    for label, redact in (
        ("  no secrets        ", Redactor()),
        ("  20 secrets        ", Redactor(SECRETS)),
    ):

        def once(redact: Redactor = redact) -> None:
            out = MaskedStream(io.StringIO(), redact)
            for _ in range(1024):
                out.write(chunk)
            out.finish()

        print(label, spread(trials(runs, once)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--cases", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_replay(Path(tmp), args.runs, args.cases)
    bench_console(args.runs)


if __name__ == "__main__":
    main()
