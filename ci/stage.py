"""Running one stage: build its context, call it, always write its result, and turn
the outcome into one line and an exit code. Nox sessions call `execute` (in nox's own
process, or in the stage's virtualenv through `python -m ci.stage <name>`)."""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ci import settings as settings_mod
from ci.cache import Inputs, ReplayFailed, StageCache
from ci.console import AddMask, MaskedStream, masked_stdio
from ci.contract import (
    EXIT_CANCELLED,
    EXIT_INTERNAL,
    EXIT_TIMEOUT,
    StageContext,
    StageFunc,
    commit_of,
    run_id,
)
from ci.errors import GateFailed, PipelineError, ToolMissing
from ci.interrupts import Interrupts, StageTimeout
from ci.redact import Redactor, secrets_from_env
from ci.registry import STAGES, StageSpec, get_stage
from ci.result import StageResult, Status, write_result
from ci.runner import Runner
from ci.settings import Settings


def resolve(target: str) -> StageFunc:
    """Import `module:function` lazily so `nox -l` stays fast."""
    module, _, func = target.partition(":")
    return getattr(importlib.import_module(module), func)


def check_python_tools(spec: StageSpec) -> None:
    """The stage's pinned PyPI tools must be importable at their pinned versions in this
    interpreter (its nox session venv installs them); ToolMissing says how otherwise."""
    for requirement in spec.python:
        dist, _, pinned = requirement.partition("==")
        try:
            found = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found = None
        if found != pinned:
            have = f"version {found} is installed" if found else "it is not installed"
            raise ToolMissing(
                dist,
                f"the {spec.name} stage pins {requirement} but {have} in {sys.executable}; "
                f"run it as `nox -s {spec.name}` (its own virtualenv) or "
                f"`pip install {requirement}`",
            )


def _fallback_out_dir(root: Path, env: Mapping[str, str]) -> Path:
    """Where to write the result when the settings themselves cannot be read."""
    out = env.get(settings_mod.ENV_PREFIX + "OUTPUT_DIR", "")
    if out and Path(out).is_absolute():
        return Path(out)
    base = Path(env.get(settings_mod.ENV_PREFIX + "WORKSPACE", "") or root)
    return (base if base.is_absolute() else root / base) / (out or "target/pipeline")


@dataclass
class _Outcome:
    result: StageResult
    code: int


def execute(
    name: str,
    root: Path,
    posargs: Sequence[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
    stages: tuple[StageSpec, ...] = STAGES,
) -> tuple[int, str]:
    """Run stage `name` of the registry with the configuration of project `root`.

    Returns (exit code, one masked verdict line). The result file is written in every
    case: success, gate failure, configuration error, missing tool, hard time limit,
    Ctrl-C, SIGTERM (a second signal cannot cut the teardown short), and a defect in the
    pipeline itself (status internal-error; the traceback goes to the stage log only).
    Everything printed or written is masked; the stage parses raw output.
    """
    env = dict(os.environ if env is None else env)
    start = time.monotonic()
    redactor = Redactor(secrets_from_env(env))
    out_dir = _fallback_out_dir(root, env)
    budget = float(settings_mod.schema()["budgets"].get(name, 300))
    limit = budget * 3
    log_path = out_dir / f"{name}.log"
    runner: Runner | None = None
    cache: StageCache | None = None
    remember: Inputs | None = None
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(masked_stdio(redactor))
        shown = MaskedStream(stream, redactor) if stream is not None else out
        redactor.on_add(AddMask(env, out))
        interrupts = stack.enter_context(Interrupts())
        try:
            spec = get_stage(name, stages)
            settings = settings_mod.load(root, env)
            redactor.add(secrets_from_env(env, settings.secret_env))
            out_dir = settings.out_dir
            log_path = out_dir / f"{name}.log"
            budget = settings.budget(name)
            limit = settings.timeout(name)
            interrupts.deadline(limit)
            out_dir.mkdir(parents=True, exist_ok=True)
            log_path.unlink(missing_ok=True)
            runner = stack.enter_context(
                Runner(
                    redactor,
                    log_path=log_path,
                    github=env.get("GITHUB_ACTIONS") == "true",
                    stream=shown,
                    base_env=env,
                    pass_env=(*spec.pass_env, *settings.top.strings("pass_env")),
                    secret_names=settings.secret_env,
                )
            )
            settings.require_workspace()
            check_python_tools(spec)
            cache = StageCache.open(settings, runner.say) if spec.cache else None
            inputs = None
            try:
                inputs = cache.inputs(spec) if cache is not None else None
            except (OSError, ValueError) as err:  # unknowable inputs: run, store nothing
                why = getattr(err, "strerror", None) or err
                runner.say(f"cache: cannot compute the inputs ({why}); running uncached")
            entry = cache.lookup(name, inputs) if cache and inputs and not posargs else None
            result: StageResult | None = None
            if cache is not None and entry is not None:
                try:
                    result = cache.replay(
                        entry, out_dir, budget, start, write_log=False, redact=redactor
                    )
                    runner.say(
                        f"cached: replayed the green result of {entry.at} "
                        f"(run {entry.run_id}); every input is unchanged"
                    )
                except ReplayFailed as err:
                    runner.say(f"cache: {err}; running the stage")
            if result is None:
                if cache is not None and inputs is None and name in cache.reasons:
                    runner.say(f"cache: not cacheable: {cache.why_not(name)}")
                elif cache is not None and inputs is not None and posargs:
                    runner.say("cache: not used: a run with extra arguments is never cached")
                elif cache is not None and inputs is not None:
                    remember = inputs
                    runner.say(f"cache: running ({cache.why_missed(name, inputs)})")
                ctx = StageContext(
                    name=name, settings=settings, runner=runner, posargs=list(posargs), spec=spec
                )
                result = resolve(spec.target)(ctx)
                if cache is not None and remember is not None and result.status.ok:
                    remember = _recheck(cache, spec, remember, runner)
            interrupts.deadline(0)
            result.artifacts.setdefault("log", str(log_path))
            result.blocking = spec.blocking
            result.config = settings.source_label()
            _announce(runner, result, settings, env)
            outcome = _Outcome(result, _code(result.status))
        except BaseException as exc:  # every way out still writes a result
            interrupts.deadline(0)
            outcome = _failure(name, exc, interrupts, budget, limit, log_path, runner, redactor)
        if shown is not out:
            shown.finish()
    result = outcome.result
    result.duration_s = round(time.monotonic() - start, 3)
    result.budget_s = budget
    try:
        write_result(out_dir, result, redactor)
    except OSError as err:
        return 2, redactor(f"{name}: cannot write result to {out_dir}: {err.strerror}")
    if cache is not None and remember is not None and outcome.code == 0:
        with contextlib.suppress(OSError):
            cache.remember(name, remember, out_dir, run_id(env), commit_of(settings))
    return outcome.code, redactor(verdict(result))


def _recheck(cache: StageCache, spec: StageSpec, before: Inputs, runner: Runner) -> Inputs | None:
    """The inputs read again now the stage has run: a result is stored only under the
    inputs it was produced from (a file edited mid-run would otherwise file this pass
    under a tree it never saw)."""
    try:
        changed = cache.unchanged_since(spec, before)
    except (OSError, ValueError) as err:  # the inputs cannot be read again: store nothing
        changed = [f"unreadable ({getattr(err, 'strerror', None) or err})"]
    if not changed:
        return before
    runner.say(
        "cache: result not stored: its inputs changed while it ran "
        f"(changed: {', '.join(changed)}); the next run runs it again"
    )
    return None


def _announce(
    runner: Runner, result: StageResult, settings: Settings, env: Mapping[str, str]
) -> None:
    """The findings as error lines; under GitHub Actions as annotations on the lines they
    point at (paths relative to the repository root, GITHUB_WORKSPACE)."""
    if not runner.github:
        for finding in result.findings:
            if finding.severity == "error":
                runner.error(finding.one_line())
        return
    from ci.annotations import commands

    repo_root = Path(env.get("GITHUB_WORKSPACE") or settings.root)
    for line in commands(result.findings, result.stage, settings.workspace, repo_root):
        runner.say(line)


def _code(status: Status) -> int:
    return {
        Status.PASSED: 0,
        Status.SKIPPED: 0,
        Status.FAILED: 1,
        Status.TIMEOUT: EXIT_TIMEOUT,
        Status.INTERNAL: EXIT_INTERNAL,
        Status.CANCELLED: EXIT_CANCELLED,
    }.get(status, 2)


def _failure(
    name: str,
    exc: BaseException,
    interrupts: Interrupts,
    budget: float,
    limit: float,
    log_path: Path,
    runner: Runner | None,
    redactor: Redactor,
) -> _Outcome:
    """The result for a stage that did not return one."""
    if isinstance(exc, StageTimeout) or (
        isinstance(exc, KeyboardInterrupt) and interrupts.timed_out
    ):
        summary = f"stopped at its hard limit of {limit:g}s (budget {budget:g}s); torn down"
        return _Outcome(StageResult(name, Status.TIMEOUT, 0.0, budget, summary), EXIT_TIMEOUT)
    if isinstance(exc, KeyboardInterrupt):
        why = str(exc) or "SIGINT"
        summary = f"interrupted ({why}); torn down"
        return _Outcome(StageResult(name, Status.CANCELLED, 0.0, budget, summary), EXIT_CANCELLED)
    if isinstance(exc, PipelineError):
        status = Status.FAILED if isinstance(exc, GateFailed) else Status.ERROR
        return _Outcome(StageResult(name, status, 0.0, budget, summary=str(exc)), exc.exit_code)
    if isinstance(exc, SystemExit):
        summary = f"internal error: the stage exited early (exit code {exc.code})"
    else:
        text = str(exc).strip().splitlines()
        summary = f"internal error: {type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
    trace = "".join(traceback.format_exception(exc))
    if runner is not None:
        runner.log_only(trace)
    else:
        with contextlib.suppress(OSError):
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with log_path.open("a", encoding="utf-8") as fh:
                fh.write(redactor(trace))
    summary += f" (a defect in the pipeline; traceback in {log_path})"
    return _Outcome(StageResult(name, Status.INTERNAL, 0.0, budget, summary), EXIT_INTERNAL)


def verdict(result: StageResult) -> str:
    """`lint passed in 12.3s (budget 60s): summary`, flagging an overrun."""
    over = " OVER BUDGET" if result.over_budget else ""
    text = (
        f"{result.stage} {result.status.value} in {result.duration_s:.1f}s "
        f"(budget {result.budget_s:.0f}s{over})"
    )
    if result.summary:
        text = f"{text}: {result.summary}"
    errors = [f for f in result.findings if f.severity == "error"]
    if not result.status.ok and errors:
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        text += f" | {errors[0].one_line()}{more}"
    return text


# Internal variables a nox session hands `python -m ci.stage` (double underscore: never
# configuration keys): the project root and where to leave the verdict for nox to print.
ROOT_ENV = "CIPIPE__ROOT"
VERDICT_ENV = "CIPIPE__VERDICT"


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m ci.stage <name> [args...]`: how a nox session runs a stage inside its own
    virtualenv. The exit code is the stage's; the verdict line goes to $CIPIPE__VERDICT."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: python -m ci.stage <stage> [args...]", file=sys.stderr)
        return 2
    root = Path(os.environ.get(ROOT_ENV) or Path(__file__).resolve().parent.parent)
    code, line = execute(args[0], root, args[1:])
    # The stage has torn down and written its result: a late Ctrl-C or SIGTERM (a second
    # one from CI) must not turn the exit into a traceback.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    target = os.environ.get(VERDICT_ENV)
    if target:
        Path(target).write_text(json.dumps({"code": code, "verdict": line}), encoding="utf-8")
    else:
        print(line)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
