#!/usr/bin/env python3
"""Benchmarks of the pipeline itself (numbers, not pass/fail):

1. overhead of `nox -s unit` over the bare cargo commands it wraps, warm;
2. the cost of a stage's own virtualenv: `nox -s security -- --only secrets` with the venv
   created from scratch (cold) and reused, against the same check without a venv;
3. time until Postgres and Redis are both ready (the integration stage's setup);
4. the unit stage's test runner: libtest (`cargo test`) against nextest, on the reference
   workspace and on a generated crate of 600 small tests (where a process per test shows).

Usage: python3 scripts/bench_pipeline.py [--runs N] [--workspace PATH]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ci import settings  # noqa: E402
from ci.services import provision  # noqa: E402


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def bench_overhead(workspace: Path, runs: int) -> None:
    target = str(ROOT / "target" / "bench")
    out = tempfile.mkdtemp(prefix="bench-out-")
    env = {
        **os.environ,
        "CIPIPE_WORKSPACE": str(workspace),
        "CIPIPE_OUTPUT_DIR": out,
        "CIPIPE_CARGO_TARGET_DIR": target,
        "CARGO_TARGET_DIR": target,
        "CARGO_TERM_COLOR": "never",
        "CIPIPE_CACHE__ENABLED": "false",  # measure the stage, never a replay of it
    }
    nox = [sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "-s", "unit"]
    bare = [
        ["cargo", "test", "--workspace", "--lib", "--bins", "--no-fail-fast"],
        ["cargo", "test", "--workspace", "--doc"],
    ]
    timed(nox, ROOT, env)  # warm the build
    for cmd in bare:
        timed(cmd, workspace, env)
    wrapped, raw = [], []
    for _ in range(runs):
        wrapped.append(timed(nox, ROOT, env))
        raw.append(sum(timed(cmd, workspace, env) for cmd in bare))
    w, r = statistics.median(wrapped), statistics.median(raw)
    print(f"unit stage on {workspace.name}, warm, median of {runs}:")
    print(f"  nox -s unit           {w:6.3f} s")
    print(f"  bare cargo commands   {r:6.3f} s")
    print(f"  pipeline overhead     {w - r:6.3f} s   (target < 0.5 s)")


def bench_venv(workspace: Path, runs: int) -> None:
    """The price of isolation: the security stage's venv (detect-secrets, xxhash, tomli-w)
    cold (removed first) and reused, against the stage run in-process without a venv."""
    out = tempfile.mkdtemp(prefix="bench-out-")
    env = {**os.environ, "CIPIPE_WORKSPACE": str(workspace), "CIPIPE_OUTPUT_DIR": out}
    nox = [sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "-s", "security"]
    args = ["--", "--only", "secrets"]
    venv = ROOT / ".nox" / "security"
    cold: list[float] = []
    for _ in range(max(1, runs // 2)):
        shutil.rmtree(venv, ignore_errors=True)
        cold.append(timed([*nox, *args], ROOT, env))
    reused = [timed([*nox, *args], ROOT, env) for _ in range(runs)]
    no_venv = [
        timed([*nox, "--no-venv", *args], ROOT, env)  # the dev env has the same pins
        for _ in range(runs)
    ]
    backend = "uv" if shutil.which("uv") else "virtualenv"
    print(f"security stage venv ({backend}), `--only secrets` on {workspace.name}, median:")
    print(f"  cold (venv created)   {statistics.median(cold):6.3f} s")
    print(f"  reused                {statistics.median(reused):6.3f} s")
    print(f"  no venv (in-process)  {statistics.median(no_venv):6.3f} s")
    print(
        f"  reuse overhead        {statistics.median(reused) - statistics.median(no_venv):6.3f} s"
    )


def many_tests_crate(root: Path, count: int = 600) -> Path:
    """A dependency-free crate with `count` tiny unit tests."""
    crate = root / "many-tests"
    (crate / "src").mkdir(parents=True, exist_ok=True)
    (crate / "Cargo.toml").write_text(
        '[package]\nname = "many-tests"\nversion = "0.1.0"\nedition = "2021"\n\n[workspace]\n'
    )
    tests = "\n\n".join(
        f"    #[test]\n    fn t{i}() {{\n        assert_eq!(super::twice({i}), {2 * i});\n    }}"
        for i in range(count)
    )
    (crate / "src" / "lib.rs").write_text(  # formatted as rustfmt would: lint passes
        "pub fn twice(x: u64) -> u64 {\n    2 * x\n}\n\n#[cfg(test)]\nmod tests {\n"
        + tests
        + "\n}\n"
    )
    return crate


def bench_runners(runs: int) -> None:
    """`nox -s unit` with each runner, warm, median of `runs`."""
    target = str(ROOT / "target" / "bench")
    crate = many_tests_crate(Path(tempfile.mkdtemp(prefix="bench-runners-")))
    nox = [sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "-s", "unit"]
    print(f"unit stage test runner, warm, median of {runs}:")
    for workspace in (ROOT, crate):
        times: dict[str, float] = {}
        for runner in ("libtest", "nextest"):
            env = {
                **os.environ,
                "CIPIPE_WORKSPACE": str(workspace),
                "CIPIPE_OUTPUT_DIR": tempfile.mkdtemp(prefix="bench-out-"),
                "CIPIPE_CARGO_TARGET_DIR": target,
                "CIPIPE_UNIT__RUNNER": runner,
                "CIPIPE_CACHE__ENABLED": "false",
            }
            timed(nox, ROOT, env)  # warm
            times[runner] = statistics.median(timed(nox, ROOT, env) for _ in range(runs))
        name = "reference workspace" if workspace == ROOT else "600 small tests"
        ratio = times["nextest"] / times["libtest"]
        print(
            f"  {name:<20} libtest {times['libtest']:6.3f} s   nextest {times['nextest']:6.3f} s"
            f"   (nextest/libtest {ratio:.2f}x)"
        )


def bench_services(runs: int) -> None:
    cfg = settings.load(ROOT, {**os.environ, "CIPIPE_SERVICES__BACKEND": "local"})
    totals: list[float] = []
    per: dict[str, list[float]] = {"postgres": [], "redis": []}
    for _ in range(runs):
        start = time.perf_counter()
        with provision(cfg, ["postgres", "redis"]) as services:
            totals.append(time.perf_counter() - start)
            for name, svc in services.items():
                per[name].append(svc.ready_s)
    print(f"services ready (local backend), median of {runs}:")
    for name, values in per.items():
        print(f"  {name:<10} {statistics.median(values):6.3f} s")
    print(f"  both ready {statistics.median(totals):6.3f} s   (target <= 0.3 s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workspace", type=Path, default=ROOT / "tests" / "fixtures" / "clean")
    args = parser.parse_args()
    bench_overhead(args.workspace.resolve(), args.runs)
    bench_venv(args.workspace.resolve(), args.runs)
    bench_services(args.runs)
    bench_runners(args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
