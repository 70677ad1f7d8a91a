"""`invoke history.*`: carry history between fresh CI runners and look at it.

    invoke history.export --out F        every record as JSON lines (atomic write)
    invoke history.import --path F       merge an export in (idempotent)
    invoke history.show                  recent runs as a table (--deployments: deployments)

The functions here are plain (settings in, message out) and tested directly;
`collection(root)` wraps them as invoke tasks for tasks.py.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ci import settings as settings_mod
from ci.console import text_table
from ci.errors import HistoryError, NoHistoryYet, PipelineError, task_errors
from ci.history import open_store
from ci.history.records import Deployment, StoredRun, utc_now
from ci.result import atomic_write
from ci.settings import Settings


def export_history(settings: Settings, out: Path, *, since_days: int = 0) -> str:
    """Write the store (runs of the last `since_days` days; 0 = all) to `out` as JSON
    lines, atomically; returns the summary line."""
    since = utc_now() - timedelta(days=since_days) if since_days > 0 else None
    buf = io.StringIO()
    with open_store(settings) as store:
        stats = store.export(buf, since=since)
        where = store.location
    try:
        atomic_write(out, buf.getvalue())
    except OSError as err:
        raise HistoryError(f"cannot write {out}: {err.strerror or err}") from None
    return (
        f"exported {stats.runs} runs ({stats.measurements} measurements) and "
        f"{stats.deployments} deployments from {where} to {out}"
    )


def import_history(settings: Settings, path: Path, *, missing_ok: bool = False) -> str:
    """Merge the export at `path` into the store; returns the summary line. A missing
    file is an error unless `missing_ok` (the first CI run has no earlier export)."""
    if not path.is_file():
        if missing_ok:
            return f"no history export at {path}: nothing imported"
        raise HistoryError(f"{path}: no such history export (--missing-ok on a first run)")
    try:
        with path.open(encoding="utf-8") as fh, open_store(settings) as store:
            stats = store.import_(fh, source=str(path))
            where = store.location
    except OSError as err:
        raise HistoryError(f"cannot read {path}: {err.strerror or err}") from None
    return (
        f"imported {stats.runs_added} runs ({stats.runs_present} already present), "
        f"{stats.deployments_added} deployments ({stats.deployments_updated} updated, "
        f"{stats.deployments_present} already present) from {path} into {where}"
    )


RUN_HEADER = (
    "started (UTC)",
    "kind",
    "status",
    "branch",
    "commit",
    "machine",
    "took",
    "values",
    "id",
)
DEPLOY_HEADER = (
    "started (UTC)",
    "environment",
    "version",
    "outcome",
    "trigger",
    "ended",
    "restore",
    "id",
)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _run_row(stored: StoredRun, count: int) -> list[str]:
    run = stored.run
    took = run.duration_s
    return [
        _when(run.started_at),
        run.kind,
        run.status,
        run.branch or "-",
        (run.commit[:12] or "-") + ("+" if run.dirty else ""),
        run.machine.label,
        "-" if took is None else f"{took:.1f}s",
        str(count),
        stored.id[:12],
    ]


def _deploy_row(dep: Deployment) -> list[str]:
    restore = dep.time_to_restore
    return [
        _when(dep.started_at),
        dep.environment,
        dep.version + (f" (from {dep.from_version})" if dep.from_version else ""),
        dep.outcome,
        dep.trigger,
        _when(dep.ended_at),
        "-" if restore is None else f"{restore.total_seconds():.0f}s",
        dep.id[:12],
    ]


def show_history(
    settings: Settings,
    *,
    kind: str | None = None,
    branch: str | None = None,
    limit: int = 20,
    deployments: bool = False,
) -> str:
    """The most recent runs (or deployments) as a table, oldest first, times in UTC."""
    try:
        with open_store(settings, create=False) as store:
            where = store.location
            if deployments:
                deps = store.deployments()[-limit:] if limit > 0 else []
                if not deps:
                    return f"no deployments recorded in {where}"
                return f"{where}\n" + text_table(DEPLOY_HEADER, [_deploy_row(d) for d in deps])
            runs = store.runs(kind, branch=branch, limit=limit)
            rows = [_run_row(r, len(store.measurements(r.id))) for r in runs]
    except NoHistoryYet as err:
        return str(err)
    if not rows:
        return f"no runs recorded in {where}"
    return f"{where}   (+ = uncommitted changes)\n" + text_table(RUN_HEADER, rows)


def _require(flag: str, value: str) -> None:
    """A required file option (an option, not a positional: a positional would take `--help`)."""
    if not value:
        raise PipelineError(f"{flag} FILE is required")
    if value.startswith("-"):
        raise PipelineError(f"{flag} {value!r}: expected a file name, not an option")


def collection(root: Path) -> Any:
    """The `history` invoke collection (export, import, show) for the project at `root`."""
    from invoke import Collection, Context, task

    @task(
        help={
            "out": "the file to write (JSON lines)",
            "since_days": "only runs and deployments of the last N days (default: all)",
        }
    )
    def export(c: Context, out: str = "", since_days: int = 0) -> None:
        """Export the history store as JSON lines (e.g. to keep as a CI cache/artifact)."""
        with task_errors():
            _require("--out", out)
            print(export_history(settings_mod.load(root), Path(out), since_days=since_days))

    @task(
        help={
            "path": "the export to merge in",
            "missing_ok": "a missing file is not an error (first run)",
        }
    )
    def import_(c: Context, path: str = "", missing_ok: bool = False) -> None:
        """Merge an export into the history store; importing it again adds nothing."""
        with task_errors():
            _require("--path", path)
            print(import_history(settings_mod.load(root), Path(path), missing_ok=missing_ok))

    @task(
        help={
            "kind": "only runs of this kind (ci, bench, coverage, release, ...)",
            "branch": "only runs on this branch",
            "limit": "how many of the most recent runs (default 20)",
            "deployments": "show deployments instead of runs",
        }
    )
    def show(
        c: Context, kind: str = "", branch: str = "", limit: int = 20, deployments: bool = False
    ) -> None:
        """Print the most recent runs (or deployments) in the history store."""
        with task_errors():
            cfg = settings_mod.load(root)
            print(
                show_history(
                    cfg,
                    kind=kind or None,
                    branch=branch or None,
                    limit=limit,
                    deployments=deployments,
                )
            )

    ns = Collection("history")
    ns.add_task(export, name="export")
    ns.add_task(import_, name="import")
    ns.add_task(show, name="show")
    return ns
