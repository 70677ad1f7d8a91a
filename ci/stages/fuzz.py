"""fuzz: coverage-guided fuzzing (cargo-fuzz / libFuzzer) of the workspace's fuzz targets,
each time-boxed. On stable Rust it runs with `--sanitizer none`: in safe Rust the
findings are panics and broken invariants, which is what the targets assert.

The corpus kept in the repository (`<fuzz dir>/corpus/<target>/`) seeds every run and is
never written to; new interesting inputs go to the stage's artifacts. A crash is saved as
a reproducer under `<artifacts>/crashes/<target>/` and turns the stage red, naming the
target, the panic and the command that replays it.

Options: `nox -s fuzz -- --seconds 300 --target matching` (repeatable).
"""

from __future__ import annotations

import argparse
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ci import tools
from ci.contract import Clock, StageContext
from ci.errors import ConfigError, ToolMissing, WorkspaceError
from ci.history import Measurement
from ci.result import Finding, StageResult, Status, atomic_write
from ci.stages.load import record

_STAT = re.compile(r"^stat::(\w+):\s+(\d+)", re.M)
_WRITTEN = re.compile(r"Test unit written to (\S+)")


def _args(posargs: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nox -s fuzz --", add_help=False)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--target", action="append", default=[])
    args, rest = parser.parse_known_args(list(posargs))
    if rest:
        raise ConfigError(f"fuzz: unknown argument(s) {' '.join(rest)}; use --seconds, --target")
    return args


@dataclass(frozen=True)
class Outcome:
    """One target's run: executions, speed, coverage, and the crash if any."""

    target: str
    executions: int
    execs_per_s: int
    coverage: int
    crash: Path | None
    panic: str


def parse_run(target: str, output: str) -> Outcome:
    """libFuzzer's final stats (`-print_final_stats=1`), coverage and crash report."""
    stats = {k: int(v) for k, v in _STAT.findall(output)}
    cov = re.findall(r"\bcov: (\d+)", output)
    written = _WRITTEN.findall(output)
    return Outcome(
        target=target,
        executions=stats.get("number_of_executed_units", 0),
        execs_per_s=stats.get("average_exec_per_sec", 0),
        coverage=int(cov[-1]) if cov else 0,
        crash=Path(written[-1]) if written else None,
        panic=panic_message(output),
    )


def panic_message(output: str) -> str:
    """The panic message of a crashed target: the line(s) after `panicked at`."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if "panicked at" in line:
            where = line.split("panicked at", 1)[1].strip().rstrip(":")
            text = lines[i + 1].strip() if i + 1 < len(lines) else ""
            return f"{text} (at {where})" if text else where
    for line in lines:
        if "ERROR: libFuzzer:" in line:
            return line.split("ERROR: libFuzzer:", 1)[1].strip()
    return ""


def run(ctx: StageContext) -> StageResult:
    """Fuzz every target (or those asked for), each for the time box."""
    sec = ctx.settings.section("fuzz")
    args = _args(ctx.posargs)
    fuzz_dir = ctx.workspace / sec.text("dir")
    if not (fuzz_dir / "Cargo.toml").is_file():
        return StageResult(
            ctx.name,
            Status.SKIPPED,
            0.0,
            0.0,
            summary=f"skipped: no cargo-fuzz project at {fuzz_dir} ([tool.pipeline.fuzz] dir)",
        )
    seconds = args.seconds or sec.number("seconds", minimum=1)
    sanitizer = sec.choice("sanitizer", ("none", "address", "leak", "memory", "thread"))
    exe, version = tools.resolve(
        ctx.runner, "cargo-fuzz", auto_install=ctx.settings.top.flag("install_tools")
    )
    env = ctx.cargo_env()
    if ctx.settings.cargo_target_dir is not None:  # instrumented builds apart from the rest
        env["CARGO_TARGET_DIR"] = str(ctx.settings.cargo_target_dir / "fuzz")
    fuzz_args = ["--fuzz-dir", str(fuzz_dir)]
    listed = ctx.runner.run(
        [exe, "fuzz", "list", *fuzz_args], cwd=ctx.workspace, env=env, capture=True
    )
    if not listed.ok:
        raise WorkspaceError(f"cargo fuzz list failed: {listed.stderr.strip()[-300:]}")
    available = [t for t in listed.stdout.split() if t]
    wanted = args.target or sec.strings("targets") or available
    unknown = [t for t in wanted if t not in available]
    if unknown:
        raise ConfigError(
            f"fuzz: unknown target(s) {', '.join(unknown)}; targets: {', '.join(available)}"
        )
    clock = Clock()
    outcomes: list[Outcome] = []
    for target in wanted:
        with ctx.runner.group(f"fuzz {target} ({seconds:g}s)"), clock.check(target) as chk:
            chk.tool_version = version
            outcome = _fuzz(ctx, exe, fuzz_dir, target, seconds, sanitizer, env)
            outcomes.append(outcome)
            chk.summary = (
                f"{outcome.executions} runs, {outcome.execs_per_s} exec/s, cov {outcome.coverage}"
            )
            if outcome.crash is not None:
                chk.status = Status.FAILED
                chk.summary = f"crashed: {outcome.panic or 'see the log'}"
                clock.findings.append(
                    Finding(
                        "fuzz",
                        f"fuzz target {target} crashed: {outcome.panic or 'see the stage log'}; "
                        f"reproducer {outcome.crash} (replay: cargo fuzz run {target} "
                        f"{outcome.crash} --fuzz-dir {fuzz_dir} --sanitizer {sanitizer})",
                        rule="fuzz-crash",
                        crate=target,
                    )
                )
            elif outcome.executions == 0:
                chk.status = Status.ERROR
                chk.summary = "the fuzzer ran no input (see the stage log)"
    markdown = ctx.artifacts_dir / "fuzz.md"
    atomic_write(markdown, ctx.runner.redact(_markdown(outcomes, seconds)))  # panics quote input
    values = [
        Measurement("fuzz", f"{o.target}.execs_per_s", o.execs_per_s, "exec/s") for o in outcomes
    ]
    values += [Measurement("fuzz", f"{o.target}.coverage", o.coverage, "edges") for o in outcomes]
    record(ctx, "fuzz", clock.status().value, values)
    return clock.result(ctx.name, {"markdown": str(markdown)})


def _fuzz(
    ctx: StageContext,
    exe: str,
    fuzz_dir: Path,
    target: str,
    seconds: float,
    sanitizer: str,
    env: dict[str, str],
) -> Outcome:
    sec = ctx.settings.section("fuzz")
    seeds = fuzz_dir / "corpus" / target
    new = ctx.artifacts_dir / "corpus" / target
    crashes = ctx.artifacts_dir / "crashes" / target
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    crashes.mkdir(parents=True, exist_ok=True)
    corpora = [str(new)] + ([str(seeds)] if seeds.is_dir() else [])
    cmd = [exe, "fuzz", "run", "--fuzz-dir", str(fuzz_dir), "--sanitizer", sanitizer]
    cmd += ["-O", target, *corpora, "--", f"-max_total_time={int(seconds)}"]
    cmd += [f"-artifact_prefix={crashes}/", "-print_final_stats=1"]
    cmd += [f"-max_len={sec.whole('max_len', minimum=1)}", "-timeout=10"]
    build_allowance = sec.number("build_timeout", minimum=1)
    res = ctx.runner.run(
        cmd, cwd=ctx.workspace, env=env, capture=True, timeout=seconds + build_allowance
    )
    outcome = parse_run(target, res.stdout + res.stderr)
    if res.returncode != 0 and outcome.crash is None and outcome.executions == 0:
        tail = [ln for ln in res.stderr.splitlines() if ln.strip()][-3:]
        if "requires a nightly" in res.stderr or "-Z" in " ".join(tail):
            raise ToolMissing(
                "nightly Rust",
                f"sanitizer {sanitizer!r} needs a nightly toolchain; "
                "[tool.pipeline.fuzz] sanitizer = 'none' runs on stable",
            )
        raise WorkspaceError(f"fuzz target {target} did not run: {' | '.join(tail)}")
    return outcome


def _markdown(outcomes: list[Outcome], seconds: float) -> str:
    out = [
        f"### Fuzzing ({seconds:g} s per target)",
        "",
        "| target | runs | exec/s | coverage | result |",
        "|---|---|---|---|---|",
    ]
    for o in outcomes:
        verdict = f"crashed: {o.panic}".replace("|", "\\|") if o.crash else "no crash"
        out.append(f"| {o.target} | {o.executions} | {o.execs_per_s} | {o.coverage} | {verdict} |")
    return "\n".join(out) + "\n"
