"""The export format: JSON lines, one header line then one line per run (with its
measurements inline) and per deployment. Records keep their store ids, so importing
the same file twice adds nothing and two stores can be merged in either order.

    {"format": "cipipe-history", "version": 1, "exported_at": "...Z"}
    {"type": "run", "id": "...", "kind": "bench", ..., "measurements": [{...}, ...]}
    {"type": "deployment", "id": "...", "environment": "production", ...}

A file of a newer format version is refused (nothing is imported) rather than half read.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import IO, Any

from ci.errors import HistoryError
from ci.history import fields
from ci.history.records import (
    TRANSITIONS,
    Deployment,
    Machine,
    Measurement,
    RunInfo,
    StoredRun,
    json_text,
    time_text,
    utc_now,
)
from ci.history.rows import (
    DEPLOY_SELECT,
    INSERT_DEPLOYMENT,
    INSERT_MEASUREMENT,
    INSERT_RUN,
    RUN_SELECT,
    check_unique,
    deploy_row,
    deployment,
    fetch_deployment,
    measurement,
    measurement_rows,
    run_row,
    stored_run,
    where_sql,
)
from ci.history.schema import INSERT_META, Tx, meta_rows

FORMAT = "cipipe-history"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ExportStats:
    """What `export` wrote."""

    runs: int
    measurements: int
    deployments: int


@dataclass(frozen=True)
class ImportStats:
    """What `import_` changed: new records, and records the store already had."""

    runs_added: int = 0
    runs_present: int = 0
    deployments_added: int = 0
    deployments_updated: int = 0
    deployments_present: int = 0

    @property
    def changed(self) -> bool:
        """True when the import added or updated anything."""
        return bool(self.runs_added or self.deployments_added or self.deployments_updated)


@dataclass(frozen=True)
class RunRecord:
    """A run as exported: the stored run and its measurements."""

    stored: StoredRun
    measurements: tuple[Measurement, ...]


def header_line() -> str:
    """The first line of an export."""
    return _dump({"format": FORMAT, "version": FORMAT_VERSION, "exported_at": time_text(utc_now())})


def run_line(stored: StoredRun, measurements: list[Measurement]) -> str:
    """One run (with its measurements) as a line."""
    run = stored.run
    return _dump(
        {
            "type": "run",
            "id": stored.id,
            "recorded_at": time_text(stored.recorded_at),
            "kind": run.kind,
            "commit": run.commit,
            "branch": run.branch,
            "run_id": run.run_id,
            "machine": {"id": run.machine.id, "label": run.machine.label},
            "started_at": time_text(run.started_at),
            "finished_at": run.finished_at and time_text(run.finished_at),
            "status": run.status,
            "dirty": run.dirty,
            "tool_versions": run.tool_versions,
            "meta": run.meta,
            "measurements": [
                {
                    "suite": m.suite,
                    "name": m.name,
                    "value": m.value,
                    "unit": m.unit,
                    "extra": m.extra,
                }
                for m in measurements
            ],
        }
    )


def deployment_line(dep: Deployment) -> str:
    """One deployment as a line."""
    data = asdict(dep)
    for key in ("started_at", "ended_at", "recovered_at"):
        data[key] = data[key] and time_text(data[key])
    return _dump({"type": "deployment", **data})


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n"


def check_header(line: str, where: str) -> None:
    """Raise HistoryError unless `line` is a header this code can read."""
    try:
        data = json.loads(line)
    except ValueError:
        data = None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise HistoryError(f"{where}: not a history export (first line is not a {FORMAT} header)")
    version = data.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise HistoryError(
            f"{where}: export format version {version} is newer than this pipeline reads "
            f"(up to {FORMAT_VERSION}); update the pipeline, nothing was imported"
        )


def parse_line(line: str, where: str) -> RunRecord | Deployment:
    """A run or deployment line; HistoryError naming `where` (file:line) if malformed."""
    try:
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        kind = data.pop("type", None)
        if kind == "run":
            return _run(data)
        if kind == "deployment":
            return _deployment(data)
        raise ValueError(f"unknown record type {kind!r}")
    except (ValueError, TypeError, KeyError) as err:
        what = f"missing field {err}" if isinstance(err, KeyError) else str(err)
        raise HistoryError(f"{where}: malformed record ({what}); nothing was imported") from None


def _exact(data: dict[str, Any], fields: set[str]) -> None:
    extra = set(data) - fields
    if extra:
        # A field this version does not know would be dropped silently: refuse instead.
        raise ValueError(f"unknown fields {', '.join(sorted(extra))}")


_RUN_FIELDS = {
    "id", "recorded_at", "kind", "commit", "branch", "run_id", "machine", "started_at",
    "finished_at", "status", "dirty", "tool_versions", "meta", "measurements",
}  # fmt: skip
_MEASUREMENT_FIELDS = {"suite", "name", "value", "unit", "extra"}


def _run(data: dict[str, Any]) -> RunRecord:
    _exact(data, _RUN_FIELDS)
    machine = fields.mapping(data["machine"], "machine")
    run = RunInfo(
        kind=fields.string(data["kind"], "kind"),
        commit=fields.string(data["commit"], "commit"),
        branch=fields.string(data["branch"], "branch"),
        run_id=fields.string(data["run_id"], "run_id"),
        machine=Machine(
            fields.string(machine["id"], "machine.id"), fields.string(machine["label"], "label")
        ),
        started_at=fields.timestamp(data["started_at"], "started_at"),
        finished_at=fields.optional_timestamp(data["finished_at"], "finished_at"),
        status=fields.string(data["status"], "status"),
        tool_versions=fields.string_map(data["tool_versions"], "tool_versions"),
        meta=fields.mapping(data["meta"], "meta"),
        dirty=fields.boolean(data["dirty"], "dirty"),
    )
    measurements = []
    for n, item in enumerate(fields.array(data["measurements"], "measurements"), start=1):
        where = f"measurements[{n}]"
        _exact(fields.mapping(item, where), _MEASUREMENT_FIELDS)
        measurements.append(
            Measurement(
                suite=fields.string(item["suite"], f"{where}.suite"),
                name=fields.string(item["name"], f"{where}.name"),
                value=fields.number(item["value"], f"{where}.value"),
                unit=fields.string(item.get("unit", ""), f"{where}.unit"),
                extra=fields.mapping(item.get("extra", {}), f"{where}.extra"),
            )
        )
    recorded = fields.timestamp(data["recorded_at"], "recorded_at")
    return RunRecord(StoredRun(fields.string(data["id"], "id"), run, recorded), tuple(measurements))


def _deployment(data: dict[str, Any]) -> Deployment:
    _exact(data, {f for f in Deployment.__dataclass_fields__})
    return Deployment(
        id=fields.string(data["id"], "id"),
        environment=fields.string(data["environment"], "environment"),
        version=fields.string(data["version"], "version"),
        digest=fields.string(data["digest"], "digest"),
        started_at=fields.timestamp(data["started_at"], "started_at"),
        ended_at=fields.optional_timestamp(data.get("ended_at"), "ended_at"),
        outcome=fields.string(data["outcome"], "outcome"),
        trigger=fields.string(data["trigger"], "trigger"),
        from_version=fields.optional_string(data.get("from_version"), "from_version"),
        details=fields.mapping(data.get("details") or {}, "details"),
        recovered_at=fields.optional_timestamp(data.get("recovered_at"), "recovered_at"),
    )


def write_export(tx: Tx, fh: IO[str], since: datetime | None) -> ExportStats:
    """Write every run started at or after `since` (all when None), with its
    measurements, and every such deployment, read in the transaction `tx`."""
    cut = [] if since is None else ["r.started_at >= ?"]
    params = [] if since is None else [time_text(since)]
    runs = [
        stored_run(r)
        for r in tx.query(
            RUN_SELECT + where_sql(cut) + " ORDER BY r.started_at, r.recorded_at, r.id", params
        )
    ]
    rows = tx.query(
        "SELECT m.run_id, m.suite, m.name, m.value, m.unit, m.extra FROM measurements m"
        " JOIN runs r ON r.id = m.run_id" + where_sql(cut) + " ORDER BY m.suite, m.name",
        params,
    )
    deploy_where = where_sql([c.removeprefix("r.") for c in cut])
    deps = [
        deployment(r)
        for r in tx.query(DEPLOY_SELECT + deploy_where + " ORDER BY started_at, id", params)
    ]
    grouped: dict[str, list[Measurement]] = {}
    for run_id, *rest in rows:
        grouped.setdefault(run_id, []).append(measurement(rest))
    fh.write(header_line())
    for stored in runs:
        fh.write(run_line(stored, grouped.get(stored.id, [])))
    for dep in deps:
        fh.write(deployment_line(dep))
    return ExportStats(len(runs), len(rows), len(deps))


def read_export(fh: IO[str], source: str) -> list[RunRecord | Deployment]:
    """Every record of an export, validated; HistoryError (file:line) on the first bad one."""
    try:
        lines = list(enumerate(fh, start=1))
    except UnicodeDecodeError:
        raise HistoryError(f"{source}: not a text file, not a history export") from None
    if not lines:
        raise HistoryError(f"{source}: empty file, not a history export")
    check_header(lines[0][1], f"{source}:1")
    return [parse_line(text, f"{source}:{n}") for n, text in lines[1:] if text.strip()]


def merge(tx: Tx, records: list[RunRecord | Deployment]) -> ImportStats:
    """Insert the records the store lacks (by id) inside `tx`; bring deployments that
    have progressed since (finished, recovered) up to date."""
    counts = {"added": 0, "present": 0, "d_added": 0, "d_updated": 0, "d_present": 0}
    for rec in records:
        if isinstance(rec, Deployment):
            counts["d_" + _merge_deployment(tx, rec)] += 1
            continue
        stored = rec.stored
        sql = INSERT_RUN + " ON CONFLICT (id) DO NOTHING"
        if not tx.execute(sql, run_row(stored.id, stored.run, stored.recorded_at)):
            counts["present"] += 1
            continue
        counts["added"] += 1
        check_unique(rec.measurements)
        if rec.measurements:
            tx.executemany(INSERT_MEASUREMENT, measurement_rows(stored.id, rec.measurements))
        meta = meta_rows(stored.id, stored.run.meta)
        if meta:
            tx.executemany(INSERT_META, meta)
    return ImportStats(
        counts["added"],
        counts["present"],
        counts["d_added"],
        counts["d_updated"],
        counts["d_present"],
    )


def _merge_deployment(tx: Tx, dep: Deployment) -> str:
    if tx.execute(INSERT_DEPLOYMENT + " ON CONFLICT (id) DO NOTHING", deploy_row(dep)):
        return "added"
    have = fetch_deployment(tx, dep.id)
    assert have is not None
    newer_outcome = dep.outcome in TRANSITIONS.get(have.outcome, ())
    newly_recovered = have.recovered_at is None and dep.recovered_at is not None
    if not newer_outcome and not newly_recovered:
        return "present"
    ended = have.ended_at or dep.ended_at
    recovered = have.recovered_at or dep.recovered_at
    tx.execute(
        "UPDATE deployments SET outcome = ?, ended_at = ?, details = ?, recovered_at = ?"
        " WHERE id = ?",
        (
            dep.outcome if newer_outcome else have.outcome,
            ended and time_text(ended),
            json_text({**have.details, **dep.details} if newer_outcome else have.details),
            recovered and time_text(recovered),
            dep.id,
        ),
    )
    return "updated"
