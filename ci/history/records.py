"""What the history store records and what its queries return: frozen dataclasses, plus
the one text form of timestamps and JSON fields that both backends and the export
format share (so a record reads back identically from SQLite, Postgres or a file)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

# Fixed width, UTC, microseconds: text order is time order in every backend.
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

DEPLOYMENT_OUTCOMES = ("in_progress", "succeeded", "failed", "rolled_back")
FAILED_OUTCOMES = ("failed", "rolled_back")
# Which outcome may follow which: a finished deployment may later be found bad
# (succeeded -> failed / rolled_back) and a failed one rolled back; nothing goes back.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "in_progress": ("succeeded", "failed", "rolled_back"),
    "succeeded": ("failed", "rolled_back"),
    "failed": ("rolled_back",),
    "rolled_back": (),
}


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def time_text(moment: datetime) -> str:
    """The stored form of a timestamp; naive datetimes are refused (their zone is a guess)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"timestamp {moment.isoformat()} has no timezone: use UTC")
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """A stored timestamp back as an aware UTC datetime (ISO 8601 with an offset accepted)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no timezone")
    return moment.astimezone(UTC)


def maybe_time(text: str | None) -> datetime | None:
    """`parse_time` for nullable columns."""
    return None if text is None else parse_time(text)


def json_text(value: Mapping[str, Any]) -> str:
    """Canonical JSON for stored dict fields: sorted keys, no NaN (not JSON)."""
    return json.dumps(dict(value), sort_keys=True, separators=(",", ":"), allow_nan=False)


def json_dict(text: str) -> dict[str, Any]:
    """A stored JSON object back as a dict."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _aware(name: str, moment: datetime | None) -> None:
    if moment is None:
        return
    if not isinstance(moment, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} {moment.isoformat()} has no timezone: use UTC")


@dataclass(frozen=True)
class Machine:
    """Where a run happened. `id` is stable per machine (or a configured machine class,
    `[tool.pipeline.history] machine`); `label` is for people."""

    id: str
    label: str


@dataclass(frozen=True)
class RunInfo:
    """One run of something the pipeline does: `kind` is "ci", "bench", "coverage",
    "release", "load", ...; `run_id` is the CI run it belongs to (several records may
    share it); `meta` holds what distinguishes runs of a kind, e.g. {"mode": "wall"}.
    `dirty` marks a run on a working tree with uncommitted changes: it is never a
    baseline and never part of a series."""

    kind: str
    commit: str
    branch: str
    run_id: str
    machine: Machine
    started_at: datetime
    finished_at: datetime | None = None
    status: str = "running"
    tool_versions: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    dirty: bool = False

    def __post_init__(self) -> None:
        if not self.kind or not self.kind.strip():
            raise ValueError("a run needs a kind (ci, bench, coverage, ...)")
        _aware("started_at", self.started_at)
        _aware("finished_at", self.finished_at)
        json_text(self.meta)  # JSON-serialisable, checked before anything is written
        json_text(self.tool_versions)

    def finished(self, status: str, at: datetime | None = None) -> RunInfo:
        """This run, finished now (or `at`) with `status`."""
        return replace(self, status=status, finished_at=at or utc_now())

    @property
    def duration_s(self) -> float | None:
        """Wall time of the run, when it has finished."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class Measurement:
    """One number a run produced: suite "bench.wall" name "book/insert_deep" value 57.1
    unit "ns" extra {"low": .., "high": ..}; suite "stage" name "lint" value 12.3 unit "s"
    extra {"status": "passed", "budget": 60}. (suite, name) is unique within a run."""

    suite: str
    name: str
    value: float
    unit: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.suite or not self.name:
            raise ValueError(
                f"a measurement needs a suite and a name: {self.suite!r}/{self.name!r}"
            )
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            raise TypeError(f"measurement {self.suite}/{self.name}: value must be a number")
        if not math.isfinite(self.value):
            raise ValueError(
                f"measurement {self.suite}/{self.name}: value {self.value} is not finite"
            )
        object.__setattr__(self, "value", float(self.value))
        json_text(self.extra)


@dataclass(frozen=True)
class StoredRun:
    """A recorded run: its store id (unique across stores, kept by export/import) and
    when it was recorded."""

    id: str
    run: RunInfo
    recorded_at: datetime


@dataclass(frozen=True)
class Point:
    """One point of a series: the value a run measured, with where and when."""

    run_id: str  # the store id of the run
    commit: str
    time: datetime  # the run's start
    value: float
    extra: dict[str, Any]
    machine: str  # machine id


@dataclass(frozen=True)
class Baseline:
    """The measurements of one suite from the run that serves as a baseline."""

    run: StoredRun
    measurements: tuple[Measurement, ...]

    def by_name(self) -> dict[str, Measurement]:
        """{name: measurement}."""
        return {m.name: m for m in self.measurements}

    def get(self, name: str) -> Measurement | None:
        """The measurement called `name`, if the baseline has one."""
        return self.by_name().get(name)


@dataclass(frozen=True)
class Deployment:
    """One deployment (a rollback is a deployment too, trigger "rollback"). A failed or
    rolled-back deployment gets `recovered_at` once service is restored (MTTR)."""

    id: str
    environment: str
    version: str
    digest: str
    started_at: datetime
    ended_at: datetime | None
    outcome: str
    trigger: str
    from_version: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    recovered_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.outcome not in DEPLOYMENT_OUTCOMES:
            raise ValueError(
                f"deployment outcome {self.outcome!r}: one of {', '.join(DEPLOYMENT_OUTCOMES)}"
            )
        if self.started_at is None:
            raise ValueError(f"deployment {self.id}: started_at is required")
        for name in ("started_at", "ended_at", "recovered_at"):
            _aware(name, getattr(self, name))
        json_text(self.details)

    @property
    def failed(self) -> bool:
        """True for deployments that count against the change failure rate."""
        return self.outcome in FAILED_OUTCOMES

    @property
    def time_to_restore(self) -> timedelta | None:
        """From the end of the deployment (change live, or rollout stopped) to recovery.
        A rollout that restored service before its record was closed (the rollback ran
        inside it) took no time after its end: zero, never negative."""
        if self.recovered_at is None or self.ended_at is None:
            return None
        return max(self.recovered_at - self.ended_at, timedelta(0))
