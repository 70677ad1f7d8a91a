"""The pipeline's one history store: benchmark baselines, coverage, `invoke ci` runs,
releases, deployments and rollbacks all go through this interface.

    from ci.history import Measurement, current_context, open_store

    info = current_context(settings, "bench", meta={"mode": "wall"})
    ...                                            # run the benchmarks
    with open_store(settings) as store:
        values = [Measurement("bench.wall", "book/insert", 57.1, "ns")]
        store.record(info.finished("passed"), values)
        base = store.baseline("bench", "bench.wall", base_sha, machine=info.machine.id)
        trend = store.series("bench.wall", "book/insert", branch="main")

Backends (`[tool.pipeline.history]`): SQLite at `path` (default
`.pipeline/history.sqlite3`, outside target/ so `cargo clean` keeps it), or Postgres
when `url` is set (from the environment: CIPIPE_HISTORY__URL). Every operation is one
transaction; failures are HistoryError with one line. Records are frozen dataclasses
with timezone-aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import IO, Any, Protocol

from ci.errors import ConfigError, HistoryError, NoHistoryYet
from ci.history.codec import ExportStats, ImportStats
from ci.history.context import GitState, current_context, this_machine
from ci.history.records import (
    DEPLOYMENT_OUTCOMES,
    Baseline,
    Deployment,
    Machine,
    Measurement,
    Point,
    RunInfo,
    StoredRun,
    utc_now,
)
from ci.settings import Settings

__all__ = [
    "DEPLOYMENT_OUTCOMES",
    "Baseline",
    "Deployment",
    "ExportStats",
    "GitState",
    "HistoryError",
    "HistoryStore",
    "ImportStats",
    "Machine",
    "Measurement",
    "NoHistoryYet",
    "Point",
    "RunInfo",
    "StoredRun",
    "current_context",
    "location",
    "open_store",
    "this_machine",
    "utc_now",
]


class HistoryStore(Protocol):
    """The history store. Each method is one transaction: when it returns, the change is
    durable; when it raises, nothing of it was written. Lists are oldest first."""

    @property
    def location(self) -> str:
        """Where the history lives: a file path, or a URL with its password masked."""
        ...

    @property
    def backend(self) -> str:
        """ "sqlite" or "postgres"."""
        ...

    def record(self, run: RunInfo, measurements: Iterable[Measurement] = ()) -> str:
        """Store a run and its measurements; returns the run's store id."""
        ...

    def get_run(self, run_id: str) -> StoredRun:
        """One run by store id (HistoryError if unknown)."""
        ...

    def latest(
        self,
        kind: str,
        *,
        commit: str | None = None,
        branch: str | None = None,
        machine: str | None = None,
        meta: Mapping[str, Any] | None = None,
        status: str | None = None,
    ) -> StoredRun | None:
        """The most recent run of `kind` matching every given filter."""
        ...

    def measurements(self, run_id: str, suite: str | None = None) -> list[Measurement]:
        """A run's measurements, ordered by suite and name."""
        ...

    def baseline(
        self, kind: str, suite: str, commit: str, machine: str | None = None
    ) -> Baseline | None:
        """The latest clean run of `kind` at `commit` that measured `suite`."""
        ...

    def series(
        self,
        suite: str,
        name: str,
        *,
        branch: str | None = "main",
        machine: str | None = None,
        limit: int = 200,
    ) -> list[Point]:
        """The last `limit` values of one measurement on `branch`, oldest first."""
        ...

    def runs(
        self,
        kind: str | None = None,
        *,
        since: datetime | None = None,
        branch: str | None = None,
        limit: int | None = None,
    ) -> list[StoredRun]:
        """Runs (of `kind`) started since `since`; `limit`: only the most recent."""
        ...

    def start_deployment(
        self,
        environment: str,
        version: str,
        digest: str,
        *,
        trigger: str,
        from_version: str | None = None,
        details: Mapping[str, Any] | None = None,
        at: datetime | None = None,
        id: str | None = None,
    ) -> str:
        """Record a started deployment (in_progress); returns its id."""
        ...

    def finish_deployment(
        self,
        dep_id: str,
        outcome: str,
        *,
        at: datetime | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Deployment:
        """Set a deployment's outcome: succeeded, failed or rolled_back."""
        ...

    def mark_recovered(self, dep_id: str, at: datetime) -> Deployment:
        """When service was restored after a failed or rolled-back deployment."""
        ...

    def deployment(self, dep_id: str) -> Deployment:
        """One deployment by id (HistoryError if unknown)."""
        ...

    def deployments(
        self, environment: str | None = None, since: datetime | None = None
    ) -> list[Deployment]:
        """Deployments (to `environment`) started since `since`."""
        ...

    def export(self, fh: IO[str], *, since: datetime | None = None) -> ExportStats:
        """Write every record as JSON lines."""
        ...

    def import_(self, fh: IO[str], *, source: str = "import") -> ImportStats:
        """Merge an export in; importing the same records again changes nothing."""
        ...

    def optimize(self) -> None:
        """Refresh the query planner's statistics (after bulk loads; import_ does it)."""
        ...


def location(settings: Settings) -> str:
    """Where `open_store(settings)` keeps history (password masked), without opening it."""
    url = _url(settings)
    if url:
        from ci.history.postgres import mask_url

        return f"{mask_url(url)} (schema {settings.section('history').text('pg_schema')})"
    return str(settings.section("history").path("path"))


def _url(settings: Settings) -> str:
    url = settings.section("history").text("url").strip()
    if url and settings.env.get("CIPIPE_HISTORY__URL", "").strip() != url:
        from ci.history.postgres import url_password

        if url_password(url):
            # pyproject.toml is committed: a password there is a leaked secret.
            raise ConfigError(
                "[tool.pipeline] history.url contains a password: remove it from "
                "pyproject.toml and set CIPIPE_HISTORY__URL in the environment (or use "
                "PGPASSWORD / ~/.pgpass)"
            )
    return url


@contextmanager
def open_store(settings: Settings, *, create: bool = True) -> Iterator[HistoryStore]:
    """The configured history store, open and migrated; closed on exit. `create=False`
    raises NoHistoryYet (a HistoryError) instead of creating a store that does not exist."""
    from ci.history.store import SqlStore

    cfg = settings.section("history")
    busy = cfg.number("busy_timeout", minimum=0)
    url = _url(settings)
    if url:
        from ci.history.postgres import open_postgres

        db: Any = open_postgres(
            url,
            schema=cfg.text("pg_schema"),
            connect_timeout=cfg.number("connect_timeout", minimum=1),
            lock_timeout=busy,
            create=create,
        )
    else:
        from ci.history.sqlite import open_sqlite

        path = cfg.path("path")
        if path is None:
            raise ConfigError("[tool.pipeline] history.path is empty: name the history file")
        db = open_sqlite(path, busy_timeout=busy, create=create)
    store = SqlStore(db)
    try:
        yield store
    finally:
        store.close()
