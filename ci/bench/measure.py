"""Building and running one side's benchmarks: criterion per benchmark (one short run
per call, in its own CRITERION_HOME, peak RSS measured), gungraun per bench target.

A side is the head workspace or the base worktree, each with its own CARGO_TARGET_DIR
under the shared target root: neither side's build invalidates the other's, and both
reuse their compiled dependencies from one run to the next.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ci.bench import criterion, gungraun
from ci.bench.targets import BenchTarget, build_args, executables
from ci.cargo import first_error
from ci.contract import StageContext
from ci.errors import BenchError, GateFailed

PEAK_RSS = Path(__file__).with_name("peak_rss.py")


@dataclass(frozen=True)
class Timing:
    """How long criterion measures in one run (seconds) and how many samples it takes."""

    warm_up: float
    measurement: float
    sample_size: int


@dataclass
class Side:
    """One side of a comparison: "head" or "base"."""

    label: str
    workspace: Path
    target_dir: Path
    commit: str
    targets: list[BenchTarget] = field(default_factory=list)
    exes: dict[tuple[str, str], Path] = field(default_factory=dict)  # (package, target)

    def fail(self, message: str) -> Exception:
        """Head is the code under review: its failure is a red gate. Base failing means
        there is nothing to compare against: the stage could not run."""
        if self.label == "head":
            return GateFailed(message)
        return BenchError(f"base ({self.commit[:12]}): {message}")


def build(
    ctx: StageContext, side: Side, targets: Sequence[BenchTarget], features: Sequence[str] = ()
) -> None:
    """`cargo bench --no-run` for `targets` in the side's workspace and target dir; the
    executables are remembered by (package, target)."""
    if not targets:
        return
    env = {**ctx.cargo_env(), "CARGO_TARGET_DIR": str(side.target_dir)}
    res = ctx.runner.run(
        ["cargo", *build_args(targets, features)], cwd=side.workspace, env=env, capture=True
    )
    if not res.ok:
        raise side.fail(f"the benches do not build: {first_error(res.stderr) or res.stderr[-300:]}")
    built = executables(res.stdout)
    for t in targets:
        exe = built.get((t.manifest_path, t.name))
        if exe is None:
            raise side.fail(f"cargo built no executable for bench target {t.package}/{t.name}")
        side.exes[t.key] = exe


def _bench_env(target: BenchTarget) -> dict[str, str]:
    """What cargo sets when it runs a bench executable, for benches that read it."""
    return {
        "CARGO_MANIFEST_DIR": str(target.package_dir),
        "CARGO_PKG_NAME": target.package,
        "CARGO_CRATE_NAME": target.name.replace("-", "_"),
    }


def list_criterion(ctx: StageContext, side: Side, target: BenchTarget) -> list[str]:
    """The benchmark ids of a criterion bench executable (`--list`)."""
    res = ctx.runner.run(
        [str(side.exes[target.key]), "--list"],
        cwd=target.package_dir,
        env=_bench_env(target),
        capture=True,
        echo_output=False,
    )
    if not res.ok:
        raise side.fail(f"{target.package}/{target.name} --list failed: {_last_line(res.output)}")
    return criterion.parse_list(res.stdout)


def _last_line(text: str) -> str:
    lines = [x.strip() for x in text.strip().splitlines() if x.strip()]
    return lines[-1] if lines else "no output"


@dataclass(frozen=True)
class WallRun:
    """One criterion run of one benchmark."""

    per_iteration_ns: list[float]
    peak_rss: int | None


def run_criterion(
    ctx: StageContext,
    side: Side,
    target: BenchTarget,
    bench_id: str,
    timing: Timing,
    scratch: Path,
) -> WallRun:
    """Measure `bench_id` once (criterion `--exact`), in a fresh CRITERION_HOME under
    `scratch`, its process's peak RSS measured by the peak_rss helper."""
    scratch.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix=f"{side.label}-", dir=scratch))
    rss_file = home / "peak-rss.json"
    argv = [
        str(side.exes[target.key]),
        "--bench",
        "--exact",
        bench_id,
        "--noplot",
        "--warm-up-time",
        f"{timing.warm_up:g}",
        "--measurement-time",
        f"{timing.measurement:g}",
        "--sample-size",
        str(timing.sample_size),
        "--nresamples",
        "1000",  # criterion's own bootstrap; the pipeline does its own analysis
    ]
    wrapped = hasattr(os, "wait4")
    if wrapped:
        argv = [sys.executable, "-E", "-S", str(PEAK_RSS), str(rss_file), *argv]
    res = ctx.runner.run(
        argv,
        cwd=target.package_dir,
        env={**_bench_env(target), "CRITERION_HOME": str(home / "criterion")},
        capture=True,
        echo_output=False,
    )
    if not res.ok:
        raise side.fail(f"benchmark {bench_id} failed: {_last_line(res.output)}")
    run = criterion.read_one(home / "criterion", bench_id)
    peak: int | None = None
    if wrapped and rss_file.is_file():
        data = json.loads(rss_file.read_text(encoding="utf-8"))
        peak = int(data["peak_rss"]) if isinstance(data.get("peak_rss"), int) else None
    return WallRun(run.per_iteration_ns, peak)


def run_gungraun(
    ctx: StageContext,
    side: Side,
    target: BenchTarget,
    runner_dir: Path,
    scratch: Path,
    name_filter: str | None,
) -> dict[str, gungraun.CountRun]:
    """Every gungraun benchmark of `target`, once, under callgrind: instruction counts by
    name. The runner binary is found first on PATH (`runner_dir` is the pinned one)."""
    scratch.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix=f"{side.label}-", dir=scratch))
    path = os.pathsep.join([str(runner_dir), ctx.runner.base_env.get("PATH", os.defpath)])
    env: Mapping[str, str] = {
        **_bench_env(target),
        "PATH": path,
        "GUNGRAUN_HOME": str(home),
        "GUNGRAUN_WORKSPACE_ROOT": str(side.workspace),
        "GUNGRAUN_COLOR": "never",
    }
    if name_filter:
        env = {**env, "GUNGRAUN_FILTER": f"*{name_filter}*"}
    res = ctx.runner.run(
        [str(side.exes[target.key]), "--bench", "--output-format=json"],
        cwd=target.package_dir,
        env=env,
        capture=True,
        echo_output=False,
    )
    if not res.ok:
        raise side.fail(
            f"gungraun bench {target.package}/{target.name} failed: {_last_line(res.stderr)}"
        )
    return gungraun.parse_summaries(res.stdout)
