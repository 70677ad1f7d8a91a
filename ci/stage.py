"""Running one stage: build its context, call it, always write its result, and turn
the outcome into one line and an exit code. Nox sessions call `execute`."""

from __future__ import annotations

import importlib
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TextIO

from ci import settings as settings_mod
from ci.errors import Interrupted, PipelineError
from ci.redact import Redactor, secrets_from_env
from ci.result import CheckResult, Finding, StageResult, Status, worst, write_result
from ci.runner import CommandResult, Runner
from ci.settings import Settings


@dataclass
class StageContext:
    """Everything a stage function needs; stages read nothing else."""

    name: str
    settings: Settings
    runner: Runner
    posargs: list[str] = field(default_factory=list)

    @property
    def workspace(self) -> Path:
        return self.settings.workspace

    @property
    def out_dir(self) -> Path:
        return self.settings.out_dir

    @property
    def artifacts_dir(self) -> Path:
        """`<out_dir>/<stage>/`, created on first use."""
        path = self.out_dir / self.name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def cargo_env(self) -> dict[str, str]:
        """Environment for cargo: shared target dir if configured, no colour codes in
        captured output, and no incremental compilation in CI (it only costs there)."""
        env = {"CARGO_TERM_COLOR": "never"}
        target = self.settings.cargo_target_dir
        if target is not None:
            env["CARGO_TARGET_DIR"] = str(target)
        if self.settings.env.get("CI"):
            env.setdefault("CARGO_INCREMENTAL", "0")
        return env

    def cargo(
        self, args: Sequence[str], *, env: Mapping[str, str] | None = None, capture: bool = False
    ) -> CommandResult:
        """Run `cargo <args>` in the workspace."""
        return self.runner.run(
            ["cargo", *args],
            cwd=self.workspace,
            env={**self.cargo_env(), **(env or {})},
            capture=capture,
        )


class Clock:
    """Times checks inside a stage and collects their results."""

    def __init__(self) -> None:
        self.checks: list[CheckResult] = []
        self.findings: list[Finding] = []

    @contextmanager
    def check(self, name: str) -> Iterator[CheckResult]:
        result = CheckResult(name=name, status=Status.PASSED)
        start = time.monotonic()
        try:
            yield result
        finally:
            result.duration_s = round(time.monotonic() - start, 3)
            self.checks.append(result)

    def status(self) -> Status:
        """Worst check status; SKIPPED when nothing ran."""
        ran = [c.status for c in self.checks if c.status is not Status.SKIPPED]
        return worst(ran) if ran else Status.SKIPPED

    def result(self, name: str, artifacts: dict[str, str] | None = None) -> StageResult:
        """The stage result: status from the checks, summary `check: summary; ...`.
        Duration and budget are filled in by `execute`."""
        return StageResult(
            stage=name,
            status=self.status(),
            duration_s=0.0,
            budget_s=0.0,
            summary="; ".join(f"{c.name}: {c.summary}" for c in self.checks),
            findings=self.findings,
            checks=self.checks,
            artifacts=dict(artifacts or {}),
        )


StageFunc = Callable[[StageContext], StageResult]


def resolve(target: str) -> StageFunc:
    """Import `module:function` lazily so `nox -l` stays fast."""
    module, _, func = target.partition(":")
    return getattr(importlib.import_module(module), func)


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def execute(
    name: str,
    root: Path,
    posargs: Sequence[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
) -> tuple[int, str]:
    """Run stage `name` of the registry with the configuration of project `root`.

    Returns (exit code, one-line verdict). The result file is written in every case:
    success, gate failure, configuration error, missing tool, Ctrl-C or SIGTERM.
    """
    from ci.stages import get_stage

    env = dict(os.environ if env is None else env)
    start = time.monotonic()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    result: StageResult | None = None
    out_dir: Path | None = None
    budget = float(settings_mod.schema()["budgets"].get(name, 300))
    code = 0
    try:
        spec = get_stage(name)
        settings = settings_mod.load(root, env)
        out_dir = settings.out_dir
        budget = settings.budget(name)
        secrets = secrets_from_env(env, settings.secret_env)
        log_path = out_dir / f"{name}.log"
        out_dir.mkdir(parents=True, exist_ok=True)
        log_path.unlink(missing_ok=True)
        with Runner(
            Redactor(secrets),
            log_path=log_path,
            github=env.get("GITHUB_ACTIONS") == "true",
            stream=stream,
            base_env=env,
        ) as runner:
            settings.require_workspace()
            ctx = StageContext(name=name, settings=settings, runner=runner, posargs=list(posargs))
            result = resolve(spec.target)(ctx)
            result.artifacts.setdefault("log", str(log_path))
            result.blocking = spec.blocking
            for finding in result.findings:
                if finding.severity == "error":
                    runner.error(finding.one_line())
        code = 0 if result.status in (Status.PASSED, Status.SKIPPED) else 1
    except PipelineError as err:
        result = StageResult(name, Status.ERROR, 0.0, budget, summary=str(err))
        code = err.exit_code
    except KeyboardInterrupt:
        result = StageResult(name, Status.CANCELLED, 0.0, budget, summary="interrupted; torn down")
        code = Interrupted.exit_code
    finally:
        signal.signal(signal.SIGTERM, previous)
    result.duration_s = round(time.monotonic() - start, 3)
    result.budget_s = budget
    if out_dir is not None:
        try:
            write_result(out_dir, result)
        except OSError as err:
            return 2, f"{name}: cannot write result to {out_dir}: {err.strerror}"
    return code, verdict(result)


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
