"""The stage contract: what every stage returns and writes to the output folder.

`<out_dir>/<stage>.json` is the only input of every report, so a report can be
re-rendered without running anything again.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2


class Status(StrEnum):
    """Outcome of a stage or check.

    Green: PASSED, and SKIPPED, which a stage declares itself with a benign reason
    ("no integration test targets"): there was nothing to check, and what depends on it
    still runs. Everything else is red: BLOCKED is a stage that did not run because a
    stage it needs did not pass, so it can never make a pipeline look green.
    """

    PASSED = "passed"
    FAILED = "failed"  # the gate is red
    ERROR = "error"  # the stage could not run (bad config, missing tool, service down)
    TIMEOUT = "timeout"  # stopped at its hard limit and torn down
    INTERNAL = "internal-error"  # a defect in the pipeline itself (traceback in the log)
    SKIPPED = "skipped"  # nothing to do, said why
    BLOCKED = "blocked"  # not run: a needed stage did not pass
    CANCELLED = "cancelled"  # interrupted (Ctrl-C, SIGTERM, fail-fast) and torn down

    @property
    def ok(self) -> bool:
        """Green: passed, or skipped by the stage itself with a reason."""
        return self in (Status.PASSED, Status.SKIPPED)

    @property
    def final(self) -> bool:
        """A verdict the stage reached itself (kept even if a cancel arrives later)."""
        return self not in (Status.CANCELLED, Status.BLOCKED)


@dataclass(frozen=True)
class Finding:
    """One thing a gate found. `message` is one line of raw text: it is masked where it
    is written (`masked`), never before a gate has used it."""

    check: str
    message: str
    rule: str | None = None
    file: str | None = None
    line: int | None = None
    severity: str = "error"
    crate: str | None = None

    def masked(self, redact: Callable[[str], str]) -> Finding:
        """This finding with its message and location masked."""
        return replace(
            self,
            message=redact(self.message),
            file=redact(self.file) if self.file else self.file,
            crate=redact(self.crate) if self.crate else self.crate,
        )

    def location(self) -> str:
        """`file:line`, `crate`, or empty."""
        if self.file:
            return f"{self.file}:{self.line}" if self.line else self.file
        return self.crate or ""

    def one_line(self) -> str:
        """Human form: `[check] location: message (rule)`."""
        where = self.location()
        rule = f" ({self.rule})" if self.rule and self.rule not in self.message else ""
        return f"[{self.check}] {where + ': ' if where else ''}{self.message}{rule}"


@dataclass
class CheckResult:
    """One check inside a stage (e.g. `fmt` and `clippy` inside `lint`)."""

    name: str
    status: Status
    duration_s: float = 0.0
    summary: str = ""
    tool_version: str | None = None


@dataclass
class StageResult:
    """What a stage returns and writes as `<stage>.json`."""

    stage: str
    status: Status
    duration_s: float
    budget_s: float
    summary: str = ""
    findings: list[Finding] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)
    blocking: bool = True
    outputs: dict[str, str] = field(default_factory=dict)  # handed to later stages
    # Set when the result was replayed from the stage cache: the run and time it came
    # from, and how long it took then.
    cached: dict[str, str] = field(default_factory=dict)
    # Which file configured the run (the workspace's own, or the pipeline's defaults).
    config: str = ""

    @property
    def over_budget(self) -> bool:
        return self.duration_s > self.budget_s

    @property
    def earned_s(self) -> float:
        """How long the run that reached this verdict took: for a result replayed from the
        stage cache, the original run's time (its own is only the replay's)."""
        try:
            return float(self.cached["duration_s"]) if self.cached else self.duration_s
        except (KeyError, ValueError):
            return self.duration_s

    def masked(self, redact: Callable[[str], str]) -> StageResult:
        """A copy whose free text (summaries, finding messages and locations) is masked.
        Structural fields (stage, status, counts, check names, severities) are never
        touched, so masking cannot change what a reader concludes."""
        return replace(
            self,
            summary=redact(self.summary),
            findings=[f.masked(redact) for f in self.findings],
            checks=[replace(c, summary=redact(c.summary)) for c in self.checks],
            outputs={k: redact(v) for k, v in self.outputs.items()},
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["schema"] = SCHEMA_VERSION
        data["status"] = self.status.value
        for check in data["checks"]:
            check["status"] = check["status"].value
        data["over_budget"] = self.over_budget
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageResult:
        return cls(
            stage=data["stage"],
            status=Status(data["status"]),
            duration_s=float(data["duration_s"]),
            budget_s=float(data["budget_s"]),
            summary=data.get("summary", ""),
            findings=[Finding(**f) for f in data.get("findings", [])],
            checks=[
                CheckResult(**{**c, "status": Status(c["status"])}) for c in data.get("checks", [])
            ],
            artifacts=dict(data.get("artifacts", {})),
            blocking=bool(data.get("blocking", True)),
            outputs=dict(data.get("outputs", {})),
            cached=dict(data.get("cached", {})),
            config=str(data.get("config", "")),
        )


def atomic_write(path: Path, text: str) -> None:
    """Write via a temp file in the same folder and rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are for everyone
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, briefly, for every
    thread); 0o022 where /proc does not say."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def result_path(out_dir: Path, stage: str) -> Path:
    return out_dir / f"{stage}.json"


def write_result(
    out_dir: Path, result: StageResult, redact: Callable[[str], str] | None = None
) -> Path:
    """Write `<out_dir>/<stage>.json` atomically (masked with `redact`) and return its path."""
    path = result_path(out_dir, result.stage)
    data = (result.masked(redact) if redact else result).to_dict()
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def read_result(out_dir: Path, stage: str) -> StageResult | None:
    """The stage's last result, or None when it has not written one (or it is unreadable)."""
    path = result_path(out_dir, stage)
    try:
        return StageResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def worst(statuses: Iterable[Status]) -> Status:
    """Aggregate status of checks: the most severe one; all-skipped is skipped."""
    order = [
        Status.INTERNAL,
        Status.ERROR,
        Status.TIMEOUT,
        Status.FAILED,
        Status.CANCELLED,
        Status.BLOCKED,
        Status.PASSED,
        Status.SKIPPED,
    ]
    seen = set(statuses)
    for status in order:
        if status in seen:
            return status
    return Status.SKIPPED
