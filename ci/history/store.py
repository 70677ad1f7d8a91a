"""The history store's operations, written once over a backend's `Db` (SQLite or
Postgres): every operation is one transaction, and the SQL is shared."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime
from typing import IO, Any, Protocol

from ci.errors import HistoryError
from ci.history import codec
from ci.history.records import (
    TRANSITIONS,
    Baseline,
    Deployment,
    Measurement,
    Point,
    RunInfo,
    StoredRun,
    json_dict,
    json_text,
    parse_time,
    time_text,
    utc_now,
)
from ci.history.rows import (
    DEPLOY_SELECT,
    INSERT_DEPLOYMENT,
    INSERT_MEASUREMENT,
    INSERT_RUN,
    NEWEST_FIRST,
    RUN_SELECT,
    check_unique,
    deploy_row,
    deployment,
    fetch_deployment,
    fetch_measurements,
    fetch_run,
    measurement_rows,
    run_filters,
    run_row,
    stored_run,
    where_sql,
)
from ci.history.schema import INSERT_META, Tx, meta_rows


class Db(Protocol):
    """What a backend provides: transactions and where it is (for messages)."""

    backend: str  # "sqlite" | "postgres"
    location: str  # file path, or the URL with its password masked

    def transaction(self, *, write: bool) -> AbstractContextManager[Tx]:
        """One transaction; driver errors leave it as HistoryError, rolled back."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...

    def optimize(self) -> None:
        """Refresh the query planner's statistics (after a bulk load)."""
        ...


class SqlStore:
    """The HistoryStore over one backend connection. Not shared between threads: open
    one store per thread or process (the backends make concurrent writers safe)."""

    def __init__(self, db: Db) -> None:
        self._db = db

    @property
    def location(self) -> str:
        """Where the history lives (a path, or a URL with its password masked)."""
        return self._db.location

    @property
    def backend(self) -> str:
        """The backend's name: sqlite or postgres."""
        return self._db.backend

    def close(self) -> None:
        """Release the connection (open_store does this)."""
        self._db.close()

    def optimize(self) -> None:
        """Refresh the query planner's statistics (import_ does this after a bulk load)."""
        self._db.optimize()

    # --- runs -------------------------------------------------------------------
    def record(self, run: RunInfo, measurements: Iterable[Measurement] = ()) -> str:
        """Store a run and its measurements in one transaction; returns the run's store id."""
        items = list(measurements)
        check_unique(items)
        run_id = uuid.uuid4().hex
        with self._db.transaction(write=True) as tx:
            tx.execute(INSERT_RUN, run_row(run_id, run, utc_now()))
            if items:
                tx.executemany(INSERT_MEASUREMENT, measurement_rows(run_id, items))
            meta = meta_rows(run_id, run.meta)
            if meta:
                tx.executemany(INSERT_META, meta)
        return run_id

    def _run(self, tx: Tx, run_id: str) -> StoredRun:
        found = fetch_run(tx, run_id)
        if found is None:
            raise HistoryError(f"no run {run_id!r} in the history store {self.location}")
        return found

    def get_run(self, run_id: str) -> StoredRun:
        """The run with this store id; HistoryError when there is none."""
        with self._db.transaction(write=False) as tx:
            return self._run(tx, run_id)

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
        """The most recent run of `kind` matching every given filter (meta: each key
        equal), or None."""
        where, params = run_filters(
            kind=kind, commit=commit, branch=branch, machine=machine, status=status
        )
        for key, value in (meta or {}).items():
            where.append(
                "EXISTS (SELECT 1 FROM run_meta x WHERE x.run_id = r.id"
                " AND x.meta_key = ? AND x.meta_value = ?)"
            )
            params += [key, json.dumps(value, sort_keys=True)]
        with self._db.transaction(write=False) as tx:
            found = tx.query(RUN_SELECT + where_sql(where) + NEWEST_FIRST + " LIMIT 1", params)
        return stored_run(found[0]) if found else None

    def measurements(self, run_id: str, suite: str | None = None) -> list[Measurement]:
        """A run's measurements (of one suite), ordered by suite and name; HistoryError
        for an unknown run id."""
        with self._db.transaction(write=False) as tx:
            self._run(tx, run_id)
            return fetch_measurements(tx, run_id, suite)

    def baseline(
        self, kind: str, suite: str, commit: str, machine: str | None = None
    ) -> Baseline | None:
        """The `suite` measurements of the latest clean run of `kind` at `commit` (on
        `machine`) that measured that suite: "the baseline for this PR's base commit"."""
        where, params = run_filters(kind=kind, commit=commit, machine=machine)
        where += [
            "r.dirty = 0",
            "EXISTS (SELECT 1 FROM measurements m WHERE m.run_id = r.id AND m.suite = ?)",
        ]
        params.append(suite)
        with self._db.transaction(write=False) as tx:
            found = tx.query(RUN_SELECT + where_sql(where) + NEWEST_FIRST + " LIMIT 1", params)
            if not found:
                return None
            run = stored_run(found[0])
            return Baseline(run, tuple(fetch_measurements(tx, run.id, suite)))

    def series(
        self,
        suite: str,
        name: str,
        *,
        branch: str | None = "main",
        machine: str | None = None,
        limit: int = 200,
    ) -> list[Point]:
        """The last `limit` values of one measurement from clean runs on `branch` (None:
        every branch) and `machine`, oldest first: "the series of this benchmark on main"."""
        where, params = run_filters(branch=branch, machine=machine)
        where = ["m.suite = ?", "m.name = ?", "r.dirty = 0", *where]
        params = [suite, name, *params, max(0, int(limit))]
        sql = (
            "SELECT r.id, r.commit_sha, r.started_at, m.value, m.extra, r.machine_id"
            " FROM measurements m JOIN runs r ON r.id = m.run_id"
        )
        with self._db.transaction(write=False) as tx:
            found = tx.query(sql + where_sql(where) + NEWEST_FIRST + " LIMIT ?", params)
        points = [
            Point(rid, commit, parse_time(at), float(value), json_dict(extra), machine_id)
            for rid, commit, at, value, extra, machine_id in found
        ]
        points.reverse()
        return points

    def runs(
        self,
        kind: str | None = None,
        *,
        since: datetime | None = None,
        branch: str | None = None,
        limit: int | None = None,
    ) -> list[StoredRun]:
        """Runs of `kind` (None: all kinds) started at or after `since`, oldest first;
        with `limit`, only the most recent `limit` of them."""
        where, params = run_filters(kind=kind, branch=branch)
        if since is not None:
            where.append("r.started_at >= ?")
            params.append(time_text(since))
        sql = RUN_SELECT + where_sql(where) + NEWEST_FIRST
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(0, int(limit)))
        with self._db.transaction(write=False) as tx:
            found = tx.query(sql, params)
        return [stored_run(r) for r in reversed(found)]

    # --- deployments ------------------------------------------------------------
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
        """Record a deployment that has started (outcome "in_progress"); returns its id."""
        dep = Deployment(
            id=id or uuid.uuid4().hex,
            environment=environment,
            version=version,
            digest=digest,
            started_at=at or utc_now(),
            ended_at=None,
            outcome="in_progress",
            trigger=trigger,
            from_version=from_version,
            details=dict(details or {}),
        )
        with self._db.transaction(write=True) as tx:
            if fetch_deployment(tx, dep.id) is not None:
                raise HistoryError(f"deployment {dep.id!r} is already recorded")
            tx.execute(INSERT_DEPLOYMENT, deploy_row(dep))
        return dep.id

    def _deployment(self, tx: Tx, dep_id: str) -> Deployment:
        found = fetch_deployment(tx, dep_id)
        if found is None:
            raise HistoryError(f"no deployment {dep_id!r} in the history store {self.location}")
        return found

    def deployment(self, dep_id: str) -> Deployment:
        """One deployment by id; HistoryError when there is none."""
        with self._db.transaction(write=False) as tx:
            return self._deployment(tx, dep_id)

    def finish_deployment(
        self,
        dep_id: str,
        outcome: str,
        *,
        at: datetime | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Deployment:
        """Set a deployment's outcome (succeeded, failed, rolled_back). A finished one may
        later be found bad (succeeded -> failed/rolled_back; failed -> rolled_back); its
        end time stays the first one. `details` are merged in."""
        with self._db.transaction(write=True) as tx:
            dep = self._deployment(tx, dep_id)
            if outcome not in TRANSITIONS.get(dep.outcome, ()):
                allowed = ", ".join(TRANSITIONS.get(dep.outcome, ())) or "none"
                raise HistoryError(
                    f"deployment {dep_id}: cannot go from {dep.outcome} to {outcome} "
                    f"(allowed: {allowed})"
                )
            ended = dep.ended_at or at or utc_now()
            if ended < dep.started_at:
                raise HistoryError(f"deployment {dep_id}: end {ended} is before its start")
            done = replace(
                dep, outcome=outcome, ended_at=ended, details={**dep.details, **(details or {})}
            )
            tx.execute(
                "UPDATE deployments SET outcome = ?, ended_at = ?, details = ? WHERE id = ?",
                (outcome, time_text(ended), json_text(done.details), dep_id),
            )
        return done

    def mark_recovered(self, dep_id: str, at: datetime) -> Deployment:
        """Record when service was restored after a failed or rolled-back deployment."""
        with self._db.transaction(write=True) as tx:
            dep = self._deployment(tx, dep_id)
            if not dep.failed:
                raise HistoryError(
                    f"deployment {dep_id} is {dep.outcome}: only a failed or rolled-back "
                    "deployment can be marked recovered"
                )
            if dep.recovered_at is not None:
                raise HistoryError(
                    f"deployment {dep_id} was already marked recovered at "
                    f"{time_text(dep.recovered_at)}"
                )
            if dep.ended_at is not None and at < dep.ended_at:
                raise HistoryError(f"deployment {dep_id}: recovery {at} is before it ended")
            tx.execute(
                "UPDATE deployments SET recovered_at = ? WHERE id = ?", (time_text(at), dep_id)
            )
        return replace(dep, recovered_at=at)

    def deployments(
        self, environment: str | None = None, since: datetime | None = None
    ) -> list[Deployment]:
        """Deployments (to `environment`) started at or after `since`, oldest first."""
        where: list[str] = []
        params: list[Any] = []
        if environment is not None:
            where.append("environment = ?")
            params.append(environment)
        if since is not None:
            where.append("started_at >= ?")
            params.append(time_text(since))
        sql = DEPLOY_SELECT + where_sql(where) + " ORDER BY started_at, id"
        with self._db.transaction(write=False) as tx:
            return [deployment(r) for r in tx.query(sql, params)]

    # --- export / import ----------------------------------------------------------
    def export(self, fh: IO[str], *, since: datetime | None = None) -> codec.ExportStats:
        """Write every run (started at or after `since`) and deployment as JSON lines,
        from one consistent snapshot."""
        with self._db.transaction(write=False) as tx:
            return codec.write_export(tx, fh, since)

    def import_(self, fh: IO[str], *, source: str = "import") -> codec.ImportStats:
        """Merge an export into this store in one transaction (all or nothing). Records
        already present (same id) are kept; a deployment that has since progressed
        (finished, recovered) is brought up to date. Importing again changes nothing."""
        records = codec.read_export(fh, source)
        with self._db.transaction(write=True) as tx:
            stats = codec.merge(tx, records)
        if stats.changed:
            self._db.optimize()  # a bulk load: plan series queries on current statistics
        return stats
