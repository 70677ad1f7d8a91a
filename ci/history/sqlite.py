"""SQLite backend (the embedded default): one file, WAL journal so readers never block
the writer, a busy timeout so two processes writing at once wait instead of failing,
schema version in `PRAGMA user_version`, file marked as ours by `PRAGMA application_id`.

A file that is not an SQLite database, belongs to another program, or has a schema
newer than this code is refused with one line and left byte-for-byte untouched.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from ci.errors import HistoryError, NoHistoryYet
from ci.history.schema import LATEST, Tx, pending

MAGIC = b"SQLite format 3\x00"
APPLICATION_ID = 0x43495048  # "CIPH"
_CORRUPT = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
_BUSY = ("SQLITE_BUSY", "SQLITE_LOCKED")


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._conn.execute(sql, params).rowcount

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._conn.executemany(sql, rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, params).fetchall()


class SqliteDb:
    """An open history file."""

    backend = "sqlite"

    def __init__(self, path: Path, conn: sqlite3.Connection, busy_timeout: float) -> None:
        self.path = path
        self.location = str(path)
        self._conn = conn
        self._busy_timeout = busy_timeout

    def error(self, err: sqlite3.Error) -> HistoryError:
        """One line saying what went wrong with the file and what to do."""
        code = getattr(err, "sqlite_errorname", "")
        if code in _BUSY:
            return HistoryError(
                f"history store {self.path} stayed locked by another writer for "
                f"{self._busy_timeout:g}s; retry, or raise [tool.pipeline.history] busy_timeout"
            )
        if code in _CORRUPT:
            return HistoryError(
                f"history store {self.path} is corrupt ({err}); it was left untouched: move it "
                "aside to start a new history, or rebuild one with `invoke history.import`"
            )
        return HistoryError(f"history store {self.path}: {err}")

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Tx]:
        """BEGIN IMMEDIATE for writes: the write lock is taken (or waited for) up front,
        so two writers queue instead of one failing on a lock upgrade."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.Error as err:
            raise self.error(err) from None
        try:
            yield _SqliteTx(conn)
            conn.execute("COMMIT")
        except BaseException as err:
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if isinstance(err, sqlite3.Error):
                raise self.error(err) from None
            raise

    def close(self) -> None:
        """Close the connection (the WAL is checkpointed by the last one to close)."""
        with suppress(sqlite3.Error):
            self._conn.close()

    def optimize(self) -> None:
        """Let SQLite refresh the statistics it finds stale (cheap when none are)."""
        try:
            self._conn.execute("PRAGMA optimize")
        except sqlite3.Error as err:
            raise self.error(err) from None

    def _scalar(self, sql: str) -> Any:
        return self._conn.execute(sql).fetchone()[0]

    def prepare(self) -> None:
        """Check the file is ours and not newer than this code, switch to WAL, migrate."""
        with self.transaction(write=False):  # one snapshot: a concurrent creator is atomic
            version = int(self._scalar("PRAGMA user_version"))
            app_id = int(self._scalar("PRAGMA application_id"))
            tables = int(self._scalar("SELECT count(*) FROM sqlite_master"))
        if version > LATEST:
            raise HistoryError(
                f"history store {self.path} has schema version {version}, newer than this "
                f"pipeline knows ({LATEST}); update the pipeline. The file was left untouched"
            )
        if (version > 0 and app_id != APPLICATION_ID) or (version == 0 and (app_id or tables)):
            raise HistoryError(
                f"{self.path} is an SQLite database of another program, not a pipeline history "
                "store; it was left untouched: set [tool.pipeline.history] path to another file"
            )
        try:
            mode = self._scalar("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")  # a commit survives power loss too
            self._conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as err:
            raise self.error(err) from None
        if str(mode).lower() != "wal":
            raise HistoryError(
                f"history store {self.path}: cannot use a WAL journal (got {mode}); "
                "put the file on a local disk"
            )
        self._migrate(version)

    def _migrate(self, seen: int) -> None:
        for migration in pending(seen):
            with self.transaction(write=True) as tx:
                # Another process may have migrated meanwhile: re-read under the write lock.
                if int(self._scalar("PRAGMA user_version")) >= migration.version:
                    continue
                migration.apply(tx)
                self._conn.execute(f"PRAGMA user_version = {int(migration.version)}")
                self._conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def _check_file(path: Path, create: bool) -> None:
    try:
        if path.is_dir():
            raise HistoryError(
                f"history store {path} is a directory; set [tool.pipeline.history] path to a file"
            )
        if path.exists():
            with path.open("rb") as fh:
                head = fh.read(len(MAGIC))
            if head and head != MAGIC:
                raise HistoryError(
                    f"history store {path} is not an SQLite database (corrupt or another kind "
                    "of file); it was left untouched: move it aside to start a new history"
                )
        elif not create:
            raise NoHistoryYet(f"no history store at {path}: nothing has been recorded yet")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise HistoryError(f"history store {path}: {err.strerror or err}") from None


def open_sqlite(path: Path, *, busy_timeout: float = 30.0, create: bool = True) -> SqliteDb:
    """Open (creating and migrating when needed) the history file at `path`."""
    _check_file(path, create)
    try:
        conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    except sqlite3.Error as err:
        raise HistoryError(f"history store {path}: cannot open: {err}") from None
    db = SqliteDb(path, conn, busy_timeout)
    try:
        db.prepare()
    except BaseException:
        db.close()
        raise
    return db
