"""coverage: `cargo tarpaulin` over the whole test suite (unit, doc and integration tests,
the latter against Postgres and Redis provisioned as the integration stage does), then
the gates: total line coverage, critical paths at 100%, the drop from the baseline
("review required"), the changed lines. Figures go to the history store; the report is
uploaded to Codecov when CODECOV_TOKEN is set.

Options (`nox -s coverage -- ...`): `--base REF` compares with REF (baseline, changed
lines); `--cobertura FILE` applies the gates to an existing report instead of running
tarpaulin; arguments after a second `--` go to cargo tarpaulin."""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from xml.etree import ElementTree

from ci import features, tools
from ci.cargo import metadata, target_kinds
from ci.contract import Clock, StageContext
from ci.coverage import cobertura, llvmcov, tarpaulin
from ci.coverage.config import CoverageConfig, load
from ci.coverage.git import Git, choose_base
from ci.coverage.report import Outcome, table
from ci.coverage.steps import codecov_check, gates, history_check, keep, write_reports
from ci.errors import ConfigError, ToolMissing
from ci.history import current_context
from ci.interrupts import shield
from ci.result import Finding, StageResult, Status
from ci.services import provision
from ci.settings import Settings
from ci.stages.unit import seed_env


@dataclass(frozen=True)
class Options:
    """The stage's own arguments."""

    base: str | None = None
    cobertura: Path | None = None
    tarpaulin: list[str] = field(default_factory=list)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"coverage: {message} (usage: {self.format_usage().strip()})")


def parse_options(args: list[str]) -> Options:
    """`--base REF`, `--cobertura FILE`, then `-- <cargo tarpaulin arguments>`."""
    parser = _Parser(prog="nox -s coverage --", add_help=False)
    parser.add_argument("--base", metavar="REF")
    parser.add_argument("--cobertura", metavar="FILE", type=Path)
    split = args.index("--") if "--" in args else len(args)
    ns = parser.parse_args(args[:split])
    return Options(ns.base, ns.cobertura, args[split + 1 :])


@dataclass(frozen=True)
class Measured:
    """What produced the figures: the report's path (None: no report, the build or
    tarpaulin failed), whether every test passed, and whether tarpaulin ran here."""

    report: Path | None
    tests_passed: bool
    ran: bool


def cache_inputs(settings: Settings) -> dict[str, str] | None:
    """Beyond the files: the baseline the drop gate compares with (found as the stage
    finds it) and the services. When the baseline is this very commit's own earlier run,
    the gate compares the code with itself: that is named, not its (slightly moving)
    figures, so unchanged code can be replayed. None when the history is unreadable."""
    from ci.coverage import baseline as figures
    from ci.errors import HistoryError, NoHistoryYet
    from ci.history import open_store
    from ci.runner import Runner
    from ci.stages.integration import cache_inputs as services

    cfg = load(settings)
    with Runner(echo=False, base_env=settings.env) as quiet:
        git = Git(quiet, settings.workspace)
        head = git.head()
        base = choose_base(None, settings.env, cfg.base)
        base_sha = git.merge_base(base) if base is not None and head is not None else None
        start = base_sha or head
        candidates = git.history(start, cfg.history_depth) if start else []
    found = None
    if candidates:
        try:
            with open_store(settings, create=False) as store:
                found = figures.find(store, candidates, "")
        except NoHistoryYet:
            found = None
        except HistoryError:
            return None
    if found is None:
        baseline = "none"
    elif found.commit == head:
        baseline = "this commit"
    else:
        baseline = f"{found.commit}:{found.total:.3f}"
    parts = {
        "baseline": f"{base_sha}:{baseline}",
        "llvm": _llvm_identity(cfg, settings),
        **services(settings),
    }
    if cfg.codecov.required:  # a required upload's verdict depends on the token being set
        parts["codecov_token"] = "set" if settings.env.get("CODECOV_TOKEN") else "unset"
    return parts


def coverable(report: Path) -> bool:
    """Whether a Cobertura report lists any coverable line (`lines-valid` > 0)."""
    try:
        root = ElementTree.parse(report).getroot()
        return int(root.get("lines-valid") or "1") > 0
    except (ElementTree.ParseError, OSError, ValueError):
        return True  # let the reader say what is wrong with it


def _llvm_identity(cfg: CoverageConfig, settings: Settings) -> str:
    """For the cache key: which llvm-profdata/llvm-cov read the profiles (their version
    can move the figures), or why there are none (then the stage errors, never replays)."""
    if cfg.engine != "llvm-cov":
        return "not used"
    try:
        profdata, llvm_cov, _ = llvmcov.find_tools(cfg, settings.env)
    except ToolMissing as err:
        return f"unusable: {err}"
    return " ".join(f"{p}={llvmcov.version_line(p)}" for p in (profdata, llvm_cov))


def run(ctx: StageContext) -> StageResult:
    """Measure line coverage of the whole test suite and apply the coverage gates."""
    cfg = load(ctx.settings)
    opts = parse_options(ctx.posargs)
    git = Git(ctx.runner, ctx.workspace)
    head = git.head()
    base = choose_base(opts.base, ctx.settings.env, cfg.base)
    if base is not None and head is None:
        raise ConfigError(
            f"coverage base {base.ref!r} (from {base.source}) needs a git checkout, and "
            f"{ctx.workspace} is not one (or has no commit yet)"
        )
    base_sha = git.merge_base(base) if base is not None else None
    info = current_context(ctx.settings, "coverage", meta={"engine": cfg.engine})
    clock = Clock()
    artifacts: dict[str, str] = {}
    stack = ExitStack()
    try:
        scratch = Path(tempfile.mkdtemp(prefix="cipipe-coverage-"))
        stack.callback(shutil.rmtree, scratch, ignore_errors=True)
        if opts.cobertura is not None:
            measured = Measured(opts.cobertura.resolve(), True, ran=False)
            with clock.check("tests") as chk:
                chk.status = Status.SKIPPED
                chk.summary = f"skipped: figures read from {opts.cobertura} (--cobertura)"
        else:
            measured, version = _measure(ctx, cfg, opts, scratch, clock, stack)
            info = replace(info, tool_versions={cfg.tool: version})
        if measured.report is None:  # nothing to measure: the "tests" check says why
            return clock.result(ctx.name, artifacts)
        if measured.ran and measured.tests_passed and not coverable(measured.report):
            # Macro-only or const-only code (cfg-if): the tests ran, there is no line
            # a test could execute. Nothing to gate on, and not a failure of the tests.
            with clock.check("gates") as chk:
                chk.status = Status.SKIPPED
                chk.summary = "skipped: the workspace has no coverable lines (no runtime code)"
            return clock.result(ctx.name, artifacts)
        report = cobertura.read(measured.report, root=ctx.workspace)
        keep(ctx, measured.report, artifacts)
    finally:
        with shield():
            stack.close()
    ctx.runner.say(table(Outcome(report, [])))
    if not measured.tests_passed:
        clock.findings.append(
            Finding("tests", "the figures are incomplete: tests failed under coverage")
        )
    outcome = gates(ctx, cfg, report, git, head, base, base_sha, clock)
    codecov_check(ctx, cfg, Path(artifacts["cobertura"]), info, git, clock)
    history_check(ctx, report, info, clock, recordable=measured.ran and measured.tests_passed)
    write_reports(ctx, cfg, outcome, artifacts)
    result = clock.result(ctx.name, artifacts)
    result.outputs = {"verdict": outcome.verdict, "total": f"{report.percent:.2f}"}
    return result


def _engine(
    ctx: StageContext, cfg: CoverageConfig, extra: list[str], exe: str, target: Path, output: Path
) -> tuple[list[str], list[str] | None, dict[str, str], Path]:
    """The engine's test command, its report command (llvm-cov: a second step; tarpaulin
    writes its report itself), their environment, and where the Cobertura report lands.
    The llvm-cov engine first finds llvm-profdata/llvm-cov of rustc's LLVM major (one
    clear line when they are missing or of another major)."""
    if cfg.engine == "llvm-cov":
        # cargo llvm-cov reports every test binary and profile under its target dir: one
        # folder per workspace, or another workspace's runs (left in the shared target dir)
        # would be measured and counted as this one's.
        where = hashlib.sha256(str(ctx.workspace.resolve()).encode()).hexdigest()[:12]
        target = target / f"ws-{where}"
        profdata, llvm_cov, major = llvmcov.find_tools(cfg, ctx.runner.base_env)
        ctx.runner.say(f"coverage: LLVM {major} tools {profdata}, {llvm_cov} (rustc's major)")
        output.mkdir(parents=True, exist_ok=True)
        return (
            llvmcov.command(exe, cfg, extra=extra),
            llvmcov.report_command(exe, cfg, workspace=ctx.workspace, output_dir=output),
            llvmcov.environment(cfg, target, profdata, llvm_cov),
            output / llvmcov.COBERTURA,
        )
    # tarpaulin runs every doc-test binary under <target>/doctests: the folder is shared by
    # every workspace measured with this target dir, so another crate's doc tests (left by
    # an earlier run) would be run and counted as this one's.
    shutil.rmtree(target / "doctests", ignore_errors=True)
    argv = tarpaulin.command(exe, cfg, target_dir=target, output_dir=output, extra=extra)
    return argv, None, tarpaulin.environment(cfg, target), output / tarpaulin.COBERTURA


def _measure(
    ctx: StageContext,
    cfg: CoverageConfig,
    opts: Options,
    scratch: Path,
    clock: Clock,
    stack: ExitStack,
) -> tuple[Measured, str]:
    """Run the engine (with the services when the workspace has integration tests); the
    "services" and "tests" checks. Returns what it measured and the engine's version."""
    meta = metadata(ctx)
    target = Path(meta["target_directory"]) / cfg.target_subdir
    exe, version = tools.resolve(
        ctx.runner, cfg.tool, auto_install=ctx.settings.top.flag("install_tools")
    )
    output = scratch / "report"
    feature_set = features.configured(ctx.settings)
    # The test builds' feature set; targets it leaves out are listed, as integration does.
    features.report_gated(clock, features.test_targets(meta, feature_set)[1])
    extra = [*feature_set.cargo_args(), *opts.tarpaulin]
    argv, report_argv, engine_env, report = _engine(ctx, cfg, extra, exe, target, output)
    # Property tests with the unit stage's fixed seed: the same cases, so the same lines.
    env = {**ctx.cargo_env(), **engine_env, **seed_env(ctx)}
    if cfg.services and "test" in target_kinds(meta):
        with ctx.runner.group("services"), clock.check("services") as chk:
            say = ctx.runner.say
            services = stack.enter_context(provision(ctx.settings, list(cfg.services), say=say))
            stack.callback(say, "services stopped: " + ", ".join(services))
            chk.summary = ", ".join(
                f"{s.name} ({s.backend}) {s.ready_s:.2f}s" for s in services.values()
            )
        for svc in services.values():
            ctx.runner.redact.add(svc.secrets)
        env.update({svc.env_var: svc.url for svc in services.values()})
    with ctx.runner.group(f"cargo {cfg.tool.removeprefix('cargo-')}"), clock.check("tests") as chk:
        chk.tool_version = version
        # llvm-cov: cargo's "Running <binary>" lines (stderr) among the test output.
        merge = cfg.engine == "llvm-cov"
        if report_argv is not None:
            # the workspace's own binaries and profiles of an earlier run (another feature
            # set) would be read with this run's: removed (dependencies stay built)
            ctx.runner.run([exe, "llvm-cov", "clean", "--workspace"], cwd=ctx.workspace, env=env)
        res = ctx.runner.run(argv, cwd=ctx.workspace, env=env, merge_stderr=merge)
        if report_argv is not None:  # figures of whatever ran, failing tests included
            ctx.runner.run(report_argv, cwd=ctx.workspace, env=env)
        failed = tarpaulin.failed_tests(res.output)
        chk.summary = f"{tarpaulin.counts(res.output)} under coverage"
        if res.ok:
            return Measured(report, True, ran=True), version
        chk.status = Status.FAILED
        clock.findings += [
            Finding(
                "tests",
                f"{t.name} failed under coverage: {t.message}".rstrip(": "),
                rule="test-failure",
                crate=t.binary or None,
            )
            for t in failed
        ]
        if not failed:
            reason = (
                tarpaulin.first_error(res.output) or f"{cfg.tool} failed (exit {res.returncode})"
            )
            chk.summary = reason
            clock.findings.append(Finding("tests", reason, rule=cfg.tool.removeprefix("cargo-")))
        return Measured(report if report.is_file() else None, False, ran=True), version
