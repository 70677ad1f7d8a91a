"""Postgres backend (teams: many runners share one history). The same tables as the
SQLite backend, inside their own Postgres schema (`pg_schema`, so a shared database is
not cluttered), versioned by a `schema_version` table. Migrations take a transaction-
scoped advisory lock (as every write does), so runners starting at once migrate exactly
once and writes are serialized as on SQLite.

The URL carries a password: it is only ever shown masked, and every driver message is
redacted before it becomes a HistoryError.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from ci.errors import ConfigError, HistoryError, NoHistoryYet
from ci.history.placeholders import to_psycopg
from ci.history.schema import LATEST, Tx, pending
from ci.redact import MASK, Redactor

SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def url_password(url: str) -> str | None:
    if "://" in url:
        try:
            return urlsplit(url).password
        except ValueError:
            return None
    found = re.search(r"(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", url)
    return found.group(1).strip("'") if found else None


def mask_url(url: str) -> str:
    """The URL for display: password replaced by ***; an unparsable one is not shown."""
    if "://" not in url:
        return "postgres (key=value connection string)"
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}{port}"))
    except ValueError:
        return "postgres (unparsable URL)"


def redactor_for(url: str) -> Redactor:
    """Masks the URL's password (raw and URL-decoded) and the whole URL."""
    secrets = {url}
    password = url_password(url)
    if password:
        secrets |= {password, unquote(password)}
    return Redactor(secrets)


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return "; ".join(lines) or "unknown error"


class _PgTx:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cur = self._conn.execute(to_psycopg(sql), params)
        return int(cur.rowcount)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._conn.cursor() as cur:
            cur.executemany(to_psycopg(sql), rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self._conn.execute(to_psycopg(sql), params).fetchall())


class PostgresDb:
    """A connection to a shared history database."""

    backend = "postgres"

    def __init__(
        self, url: str, *, schema: str, connect_timeout: float, lock_timeout: float
    ) -> None:
        if not SCHEMA_NAME.match(schema):
            raise ConfigError(
                f"[tool.pipeline] history.pg_schema: {schema!r} is not a plain lower-case "
                "identifier (letters, digits, _)"
            )
        self._url = url
        self.schema = schema
        self.location = f"{mask_url(url)} (schema {schema})"
        self._redact = redactor_for(url)
        self._connect_timeout = max(1, round(connect_timeout))
        self._lock_timeout_ms = max(1, round(lock_timeout * 1000))
        self._conn: Any = None
        self._lock_key = f"cipipe-history:{schema}"

    def error(self, err: BaseException, doing: str, hint: str = "") -> HistoryError:
        """One redacted line: what failed, the driver's reason, what to check."""
        reason = self._redact(_one_line(str(err) or type(err).__name__))
        return HistoryError(
            f"history store {self.location}: {doing}: {reason}" + (f" ({hint})" if hint else "")
        )

    def connect(self) -> None:
        """Connect, or raise HistoryError (unreachable, refused, bad credentials)."""
        try:
            import psycopg
        except ImportError:
            raise HistoryError(
                "history.url is set but psycopg is not installed: pip install 'psycopg[binary]'"
            ) from None
        try:
            conn = psycopg.connect(
                self._url,
                autocommit=True,
                connect_timeout=self._connect_timeout,
                application_name="cipipe-history",
            )
        except Exception as err:  # psycopg.Error, or a conninfo the parser rejects
            raise self.error(
                err, "cannot connect", "check CIPIPE_HISTORY__URL and that the server is up"
            ) from None
        try:
            # Both values are validated above: a regex-checked identifier and an int.
            conn.execute(f'SET search_path TO "{self.schema}"')
            conn.execute(f"SET lock_timeout = {self._lock_timeout_ms}")
        except psycopg.Error as err:
            conn.close()
            raise self.error(err, "cannot set up the session") from None
        self._conn = conn

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Tx]:
        """One server transaction; a dropped connection is re-opened on the next call."""
        import psycopg

        if self._conn is None or self._conn.broken or self._conn.closed:
            self.close()
            self.connect()
        try:
            with self._conn.transaction():
                tx = _PgTx(self._conn)
                if write:
                    # Writers queue on one lock, as on SQLite: a read-modify-write (a
                    # deployment's outcome, a migration) never interleaves with another.
                    tx.query("SELECT pg_advisory_xact_lock(hashtext(?))", (self._lock_key,))
                else:
                    # One snapshot for every query of the transaction (export, baseline).
                    tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield tx
        except psycopg.Error as err:
            raise self.error(err, "write failed" if write else "query failed") from None

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            with suppress(Exception):
                self._conn.close()
            self._conn = None

    def optimize(self) -> None:
        """ANALYZE the history tables: right after a bulk import, before autovacuum has
        looked at them, the planner would otherwise pick nested loops (a 500-point
        series query took 60 ms instead of 2 ms in scripts/bench_history.py)."""
        with self.transaction(write=True) as tx:
            tx.execute("ANALYZE runs, measurements, run_meta, deployments")

    def _version(self, tx: Tx) -> int | None:
        """The schema version, or None when there is no history schema yet; raises when
        the schema holds tables that are not ours."""
        tables = {
            name
            for (name,) in tx.query(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
                (self.schema,),
            )
        }
        if "schema_version" not in tables:
            if tables:
                raise HistoryError(
                    f"{self.location} holds tables but no schema_version: not a pipeline "
                    "history; set [tool.pipeline.history] pg_schema to another name"
                )
            return None
        rows = tx.query("SELECT version FROM schema_version")
        return int(rows[0][0]) if rows else 0

    def prepare(self, *, create: bool = True) -> None:
        """Connect, refuse a newer schema, migrate (once, under an advisory lock)."""
        self.connect()
        with self.transaction(write=False) as tx:
            found = self._version(tx)
        if found is None and not create:
            raise NoHistoryYet(f"no history in {self.location} yet: nothing has been recorded")
        seen = found or 0
        if seen > LATEST:
            raise HistoryError(
                f"history store {self.location} has schema version {seen}, newer than this "
                f"pipeline knows ({LATEST}); update the pipeline. Nothing was changed"
            )
        for migration in pending(seen):
            with self.transaction(write=True) as tx:
                current = self._version(tx)
                if current is None:
                    tx.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                    tx.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                    tx.execute("INSERT INTO schema_version (version) VALUES (0)")
                    current = 0
                if current > LATEST:
                    raise HistoryError(
                        f"history store {self.location} was upgraded to schema {current} "
                        f"by a newer pipeline meanwhile; update the pipeline"
                    )
                if current >= migration.version:
                    continue
                migration.apply(tx)
                tx.execute("UPDATE schema_version SET version = ?", (migration.version,))


def open_postgres(
    url: str,
    *,
    schema: str,
    connect_timeout: float = 10.0,
    lock_timeout: float = 30.0,
    create: bool = True,
) -> PostgresDb:
    """Connect to the history database at `url` and bring its schema up to date
    (`create=False`: NoHistoryYet instead of creating the schema)."""
    db = PostgresDb(url, schema=schema, connect_timeout=connect_timeout, lock_timeout=lock_timeout)
    try:
        db.prepare(create=create)
    except BaseException:
        db.close()
        raise
    return db
