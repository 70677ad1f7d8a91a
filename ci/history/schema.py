"""The history schema, as an ordered list of migrations shared by both backends.

The SQL is the common subset of SQLite and PostgreSQL (TEXT, INTEGER, DOUBLE PRECISION,
`?` placeholders that the Postgres backend rewrites). Timestamps are fixed-width UTC
text (see records.time_text), so ordering and comparison behave the same everywhere.

A migration is applied in one transaction together with the new version number
(SQLite `PRAGMA user_version`, Postgres table `schema_version`): a crash half-way
leaves the previous version intact. Never edit a released migration; append one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Tx(Protocol):
    """One open transaction of a backend (what migrations and the store run SQL on)."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for every parameter row."""
        ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a SELECT and return every row."""
        ...


@dataclass(frozen=True)
class Migration:
    """Schema version `version`: DDL statements, then an optional data step."""

    version: int
    description: str
    statements: tuple[str, ...]
    backfill: Callable[[Tx], None] | None = None

    def apply(self, tx: Tx) -> None:
        """Run this migration inside `tx` (the caller stamps the version)."""
        for statement in self.statements:
            tx.execute(statement)
        if self.backfill is not None:
            self.backfill(tx)


def _backfill_run_meta(tx: Tx) -> None:
    rows: list[tuple[str, str, str]] = []
    for run_id, meta in tx.query("SELECT id, meta FROM runs"):
        rows.extend(meta_rows(run_id, json.loads(meta)))
    if rows:
        tx.executemany(INSERT_META, rows)


INSERT_META = "INSERT INTO run_meta (run_id, meta_key, meta_value) VALUES (?, ?, ?)"

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "runs, their measurements, deployments",
        (
            """CREATE TABLE runs (
                id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                commit_sha TEXT NOT NULL,
                branch TEXT NOT NULL,
                ci_run_id TEXT NOT NULL,
                machine_id TEXT NOT NULL,
                machine_label TEXT NOT NULL,
                started_at TEXT NOT NULL,
                finished_at TEXT,
                status TEXT NOT NULL,
                dirty INTEGER NOT NULL DEFAULT 0,
                tool_versions TEXT NOT NULL,
                meta TEXT NOT NULL,
                recorded_at TEXT NOT NULL
            )""",
            "CREATE INDEX runs_by_kind_commit ON runs (kind, commit_sha, started_at)",
            "CREATE INDEX runs_by_branch ON runs (branch, started_at)",
            """CREATE TABLE measurements (
                run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
                suite TEXT NOT NULL,
                name TEXT NOT NULL,
                value DOUBLE PRECISION NOT NULL,
                unit TEXT NOT NULL,
                extra TEXT NOT NULL,
                PRIMARY KEY (run_id, suite, name)
            )""",
            "CREATE INDEX measurements_by_series ON measurements (suite, name)",
            """CREATE TABLE deployments (
                id TEXT PRIMARY KEY,
                environment TEXT NOT NULL,
                version TEXT NOT NULL,
                digest TEXT NOT NULL,
                started_at TEXT NOT NULL,
                ended_at TEXT,
                outcome TEXT NOT NULL,
                triggered_by TEXT NOT NULL,
                from_version TEXT,
                details TEXT NOT NULL
            )""",
            "CREATE INDEX deployments_by_environment ON deployments (environment, started_at)",
        ),
    ),
    Migration(
        2,
        "deployments: when a failed deployment was recovered (MTTR)",
        ("ALTER TABLE deployments ADD COLUMN recovered_at TEXT",),
    ),
    Migration(
        3,
        "run_meta: runs filterable by meta keys (latest(meta=...)), backfilled from runs.meta",
        (
            """CREATE TABLE run_meta (
                run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
                meta_key TEXT NOT NULL,
                meta_value TEXT NOT NULL,
                PRIMARY KEY (run_id, meta_key)
            )""",
            "CREATE INDEX run_meta_by_value ON run_meta (meta_key, meta_value)",
        ),
        _backfill_run_meta,
    ),
)

LATEST = MIGRATIONS[-1].version
assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1)), "migrations out of order"


def pending(current: int) -> list[Migration]:
    """The migrations a store at version `current` still needs, in order."""
    return [m for m in MIGRATIONS if m.version > current]


def meta_rows(run_id: str, meta: dict[str, Any]) -> list[tuple[str, str, str]]:
    """run_meta rows for a run's meta (values as canonical JSON, so 1 != "1")."""
    return [(run_id, str(k), json.dumps(v, sort_keys=True)) for k, v in meta.items()]
