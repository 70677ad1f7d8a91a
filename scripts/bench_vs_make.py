#!/usr/bin/env python3
"""The pipeline against the specification's plain Makefile (`make lint test`), on the
same warm target dir and the same work (fmt check, clippy -D warnings, every test
including the integration tests on real Postgres and Redis). Numbers, not pass/fail.

Scenarios (each run after a fresh, unique edit so neither side finds the other's build):
  no change            nothing edited since the last green run
  change core          a one-line change in trading-core (trading-system depends on it)
  change system        a one-line change in trading-system
  external crate       a generated crate of 600 small tests (any workspace), unchanged
  external edited      the same crate after a one-line change in its only source file

The Makefile gets fresh running services before each of its runs (started outside its
timing), as a developer who types `make test` has them; the pipeline starts and stops its
own (inside its timing).

Usage: python3 scripts/bench_vs_make.py [--runs 3] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_pipeline import many_tests_crate  # noqa: E402

from ci import settings  # noqa: E402
from ci.services import provision  # noqa: E402

MAKEFILE = """\
lint:
\tcargo fmt --all -- --check
\tcargo clippy --workspace --all-targets --all-features -- -D warnings
test:
\tcargo test --workspace
"""


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
        raise SystemExit(f"{' '.join(cmd[:4])} failed in {cwd}:\n" + "\n".join(tail))
    return took


def edit(path: Path) -> Callable[[], None]:
    """An edit that changes the file's content each time (a unique comment line)."""

    def apply() -> None:
        lines = path.read_text().splitlines()
        lines = [ln for ln in lines if not ln.startswith("// bench edit ")]
        path.write_text("\n".join([*lines, f"// bench edit {uuid.uuid4().hex}"]) + "\n")

    return apply


def make_run(cmd: list[str], ws: Path, base: dict[str, str], cfg: settings.Settings) -> float:
    """`make lint test` with fresh services (started and stopped outside the timing)."""
    with provision(cfg, ["postgres", "redis"]) as svc:
        return timed(cmd, ws, {**base, **{s.env_var: s.url for s in svc.values()}})


def scenario(
    name: str,
    ws: Path,
    change: Callable[[], None] | None,
    env: dict[str, str],
    base: dict[str, str],
    cfg: settings.Settings,
    makefile: Path,
    runs: int,
) -> tuple[float, float]:
    pipe = [sys.executable, "-m", "invoke", "-r", str(ROOT), "ci", "--stages"]
    pipe += ["lint,unit,integration"]
    make = ["make", "-s", "-f", str(makefile), "lint", "test"]
    timed(pipe, ROOT, env)  # warm (and record a green run for the cache)
    make_run(make, ws, base, cfg)
    ours: list[float] = []
    theirs: list[float] = []
    for i in range(runs):
        for which in ("pipe", "make") if i % 2 == 0 else ("make", "pipe"):
            if change is not None:
                change()
            if which == "pipe":
                ours.append(timed(pipe, ROOT, env))
            else:
                theirs.append(make_run(make, ws, base, cfg))
    p, m = statistics.median(ours), statistics.median(theirs)
    print(f"  {name:<16} invoke ci {p:7.2f} s   make {m:7.2f} s   ratio {p / m:5.2f}x", flush=True)
    return p, m


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-vs-make-"))
    target = os.environ.get("CARGO_TARGET_DIR") or str(ROOT / "target" / "bench-make")
    try:
        ws = scratch / "ws"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(ws)], check=True)
        makefile = scratch / "Makefile"
        makefile.write_text(MAKEFILE)
        base = {k: v for k, v in os.environ.items() if not k.startswith("CIPIPE_")}
        base.update(CARGO_TARGET_DIR=target, CARGO_TERM_COLOR="never")
        cfg = settings.load(ROOT, {**base, "CIPIPE_SERVICES__BACKEND": "local"})
        print(f"pipeline vs `make lint test`, warm, median of {args.runs}:", flush=True)
        crate = many_tests_crate(scratch)
        for name, workspace, change in (
            ("no change", ws, None),
            ("change core", ws, edit(ws / "crates/trading-core/src/types.rs")),
            ("change system", ws, edit(ws / "crates/trading-system/src/config.rs")),
            ("external crate", crate, None),
            ("external edited", crate, edit(crate / "src" / "lib.rs")),
        ):
            env = {
                **base,
                "CIPIPE_WORKSPACE": str(workspace),
                "CIPIPE_OUTPUT_DIR": str(scratch / "out"),
                "CIPIPE_CARGO_TARGET_DIR": target,
                "CIPIPE_CACHE__DIR": str(scratch / "cache"),
                "CIPIPE_HISTORY__PATH": str(scratch / "history.sqlite3"),
            }
            scenario(name, workspace, change, env, base, cfg, makefile, args.runs)
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
