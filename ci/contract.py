"""The stage contract: what a stage function receives (`StageContext`), how it times its
checks and builds its result (`Clock`), and the exit codes of a stage process.

The base of the layering (ARCHITECTURE.md, "Layers"): the stage libraries (bench,
coverage, loadtest, release, deploy) take these types from here, never from the module
that runs stages (`ci.stage`)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ci.errors import ConfigError
from ci.result import CheckResult, Finding, StageResult, Status, read_result, worst
from ci.runner import CommandResult, Runner
from ci.settings import Settings

if TYPE_CHECKING:  # the registry's declaration of a stage; a type only, never imported
    from ci.registry import StageSpec


@dataclass
class StageContext:
    """Everything a stage function needs; stages read nothing else."""

    name: str
    settings: Settings
    runner: Runner
    posargs: list[str] = field(default_factory=list)
    spec: StageSpec | None = None

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

    def upstream(self, stage: str) -> StageResult:
        """The last result of `stage` (a stage this one needs), read from the output
        folder: how outputs such as an image digest reach later stages, the same way
        whether they ran in one `invoke ci` or as separate `nox -s` calls."""
        result = read_result(self.out_dir, stage)
        if result is None or result.status is not Status.PASSED:
            state = "has not run" if result is None else f"is {result.status.value}"
            raise ConfigError(
                f"{self.name} needs the outputs of {stage}, which {state} in {self.out_dir}: "
                f"run `nox -s {stage}` first"
            )
        return result

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

# Exit codes of a stage process, beside PipelineError's own (2-6) and GateFailed's 1.
EXIT_TIMEOUT = 124  # as timeout(1)
EXIT_INTERNAL = 70  # EX_SOFTWARE: a defect in the pipeline itself
EXIT_CANCELLED = 130


def run_id(env: Mapping[str, str]) -> str:
    """This run's id for records: GitHub's run/attempt, else a local one."""
    run = env.get("GITHUB_RUN_ID")
    return f"{run}/{env.get('GITHUB_RUN_ATTEMPT', '1')}" if run else f"local-{os.getpid()}"


def commit(ctx: StageContext) -> str:
    """The workspace's HEAD commit ("" outside git)."""
    return commit_of(ctx.settings)


def commit_of(settings: Settings) -> str:
    """The workspace's HEAD commit ("" outside git)."""
    ws = settings.workspace
    if not any((d / ".git").exists() for d in (ws, *ws.parents)):
        return ""  # not in a repository: no need to ask git
    try:
        proc = subprocess.run(
            ["git", "-C", str(settings.workspace), "rev-parse", "HEAD"],
            capture_output=True,
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.decode().strip() if proc.returncode == 0 else ""
