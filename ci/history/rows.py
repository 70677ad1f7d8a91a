"""Records <-> table rows: the column lists, the SQL both backends share, and the
mappers between rows and the record dataclasses."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ci.errors import HistoryError
from ci.history.records import (
    Deployment,
    Machine,
    Measurement,
    RunInfo,
    StoredRun,
    json_dict,
    json_text,
    maybe_time,
    parse_time,
    time_text,
)
from ci.history.schema import Tx

RUN_COLUMNS = (
    "id", "kind", "commit_sha", "branch", "ci_run_id", "machine_id", "machine_label",
    "started_at", "finished_at", "status", "dirty", "tool_versions", "meta", "recorded_at",
)  # fmt: skip
RUN_SELECT = "SELECT " + ", ".join(f"r.{c}" for c in RUN_COLUMNS) + " FROM runs r"
INSERT_RUN = (
    f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})"
)
NEWEST_FIRST = " ORDER BY r.started_at DESC, r.recorded_at DESC, r.id DESC"
INSERT_MEASUREMENT = (
    "INSERT INTO measurements (run_id, suite, name, value, unit, extra) VALUES (?, ?, ?, ?, ?, ?)"
)
DEPLOY_COLUMNS = (
    "id", "environment", "version", "digest", "started_at", "ended_at", "outcome",
    "triggered_by", "from_version", "details", "recovered_at",
)  # fmt: skip
DEPLOY_SELECT = "SELECT " + ", ".join(DEPLOY_COLUMNS) + " FROM deployments"
INSERT_DEPLOYMENT = (
    f"INSERT INTO deployments ({', '.join(DEPLOY_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(DEPLOY_COLUMNS))})"
)


def run_row(run_id: str, run: RunInfo, recorded_at: datetime) -> tuple[Any, ...]:
    """A run as a `runs` row (RUN_COLUMNS order)."""
    return (
        run_id,
        run.kind,
        run.commit,
        run.branch,
        run.run_id,
        run.machine.id,
        run.machine.label,
        time_text(run.started_at),
        run.finished_at and time_text(run.finished_at),
        run.status,
        int(run.dirty),
        json_text(run.tool_versions),
        json_text(run.meta),
        time_text(recorded_at),
    )


def stored_run(row: Sequence[Any]) -> StoredRun:
    """A `runs` row (RUN_SELECT) as a StoredRun."""
    r = dict(zip(RUN_COLUMNS, row, strict=True))
    run = RunInfo(
        kind=r["kind"],
        commit=r["commit_sha"],
        branch=r["branch"],
        run_id=r["ci_run_id"],
        machine=Machine(r["machine_id"], r["machine_label"]),
        started_at=parse_time(r["started_at"]),
        finished_at=maybe_time(r["finished_at"]),
        status=r["status"],
        tool_versions=json_dict(r["tool_versions"]),
        meta=json_dict(r["meta"]),
        dirty=bool(r["dirty"]),
    )
    return StoredRun(r["id"], run, parse_time(r["recorded_at"]))


def measurement_rows(run_id: str, items: Sequence[Measurement]) -> list[tuple[Any, ...]]:
    """Measurements as `measurements` rows."""
    return [(run_id, m.suite, m.name, m.value, m.unit, json_text(m.extra)) for m in items]


def measurement(row: Sequence[Any]) -> Measurement:
    """(suite, name, value, unit, extra) as a Measurement."""
    suite, name, value, unit, extra = row
    return Measurement(suite, name, float(value), unit, json_dict(extra))


def deploy_row(d: Deployment) -> tuple[Any, ...]:
    """A deployment as a `deployments` row (DEPLOY_COLUMNS order)."""
    return (
        d.id,
        d.environment,
        d.version,
        d.digest,
        time_text(d.started_at),
        d.ended_at and time_text(d.ended_at),
        d.outcome,
        d.trigger,
        d.from_version,
        json_text(d.details),
        d.recovered_at and time_text(d.recovered_at),
    )


def deployment(row: Sequence[Any]) -> Deployment:
    """A `deployments` row (DEPLOY_SELECT) as a Deployment."""
    d = dict(zip(DEPLOY_COLUMNS, row, strict=True))
    return Deployment(
        id=d["id"],
        environment=d["environment"],
        version=d["version"],
        digest=d["digest"],
        started_at=parse_time(d["started_at"]),
        ended_at=maybe_time(d["ended_at"]),
        outcome=d["outcome"],
        trigger=d["triggered_by"],
        from_version=d["from_version"],
        details=json_dict(d["details"]),
        recovered_at=maybe_time(d["recovered_at"]),
    )


def check_unique(items: Sequence[Measurement]) -> None:
    """HistoryError when a (suite, name) appears twice among one run's measurements."""
    seen: set[tuple[str, str]] = set()
    for m in items:
        key = (m.suite, m.name)
        if key in seen:
            raise HistoryError(
                f"measurement {m.suite}/{m.name} appears twice in one run; "
                "a name is unique per suite and run"
            )
        seen.add(key)


def run_filters(**filters: str | None) -> tuple[list[str], list[Any]]:
    """WHERE clauses and parameters for the given run filters (None = not filtered)."""
    column = {
        "kind": "kind",
        "commit": "commit_sha",
        "branch": "branch",
        "machine": "machine_id",
        "status": "status",
    }
    where: list[str] = []
    params: list[Any] = []
    for key, value in filters.items():
        if value is not None:
            where.append(f"r.{column[key]} = ?")
            params.append(value)
    return where, params


def where_sql(clauses: list[str]) -> str:
    """The clauses joined as a WHERE part, or nothing when there are none."""
    return " WHERE " + " AND ".join(clauses) if clauses else ""


def fetch_run(tx: Tx, run_id: str) -> StoredRun | None:
    """The run with this store id, if any."""
    found = tx.query(RUN_SELECT + " WHERE r.id = ?", (run_id,))
    return stored_run(found[0]) if found else None


def fetch_measurements(tx: Tx, run_id: str, suite: str | None = None) -> list[Measurement]:
    """A run's measurements (of one suite), ordered by suite and name."""
    sql = "SELECT suite, name, value, unit, extra FROM measurements WHERE run_id = ?"
    params: list[Any] = [run_id]
    if suite is not None:
        sql += " AND suite = ?"
        params.append(suite)
    return [measurement(r) for r in tx.query(sql + " ORDER BY suite, name", params)]


def fetch_deployment(tx: Tx, dep_id: str) -> Deployment | None:
    """The deployment with this id, if any."""
    found = tx.query(DEPLOY_SELECT + " WHERE id = ?", (dep_id,))
    return deployment(found[0]) if found else None
