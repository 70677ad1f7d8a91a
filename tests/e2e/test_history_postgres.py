"""The history store on a real Postgres server, started by the project's own
provisioning: the shared behaviour suite, plus what only a server can get wrong
(authentication, unreachable hosts, foreign schemas). The server is switched to
password authentication, and no error message may ever contain the password."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from helpers import ROOT
from history_behaviour import *  # noqa: F403
from history_behaviour import opened, run, wall

from ci import settings
from ci.errors import HistoryError
from ci.history import open_store
from ci.history.postgres import mask_url
from ci.history.tasks import show_history
from ci.services import provision

PASSWORD = "Hist0ry-" + uuid.uuid4().hex  # planted: must never show up in a message
WRONG = "Wr0ng-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    """A Postgres from ci.services (local binaries) that requires a password over TCP."""
    cfg = settings.load(ROOT, {"CIPIPE_SERVICES__BACKEND": "local"})
    with provision(cfg, ["postgres"]) as services:
        pg = services["postgres"]
        with psycopg.connect(pg.url, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE postgres PASSWORD '{PASSWORD}'")
            hba = Path(pg.where) / "data" / "pg_hba.conf"
            hba.write_text(
                "local all all trust\n"
                "host all all 127.0.0.1/32 scram-sha-256\n"
                "host all all ::1/128 scram-sha-256\n"
            )
            conn.execute("SELECT pg_reload_conf()")
        yield f"postgresql://postgres:{PASSWORD}@127.0.0.1:{pg.port}/postgres"


class PostgresBackend:
    name = "postgres"

    def __init__(self, url: str, root: Path) -> None:
        self.url = url
        self.root = root
        self.prefix = "t" + uuid.uuid4().hex[:10]

    def schema(self, place: str) -> str:
        return f"{self.prefix}_{place}"

    def settings(self, place: str = "main", **env: str) -> settings.Settings:
        return settings.load(
            self.root,
            {
                "CIPIPE_HISTORY__URL": self.url,
                "CIPIPE_HISTORY__PG_SCHEMA": self.schema(place),
                **env,
            },
        )

    def _conn(self, place: str) -> psycopg.Connection:
        conn = psycopg.connect(self.url, autocommit=True)
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema(place)}"')
        conn.execute(f'SET search_path TO "{self.schema(place)}"')
        return conn

    def create_raw(self, place: str, version: int, statements: tuple[str, ...]) -> None:
        with self._conn(place) as conn:
            for statement in statements:
                conn.execute(statement)
            conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO schema_version VALUES (%s)", (version,))

    def set_version(self, place: str, version: int) -> None:
        with self._conn(place) as conn:
            conn.execute("UPDATE schema_version SET version = %s", (version,))

    def version(self, place: str) -> int:
        with self._conn(place) as conn:
            return int(conn.execute("SELECT version FROM schema_version").fetchone()[0])

    def fingerprint(self, place: str) -> tuple[object, ...]:
        with self._conn(place) as conn:
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
                " ORDER BY 1",
                (self.schema(place),),
            ).fetchall()
            runs = conn.execute("SELECT * FROM runs ORDER BY id").fetchall()
            return (tables, runs, self.version(place))


@pytest.fixture
def backend(server_url: str, tmp_path: Path) -> PostgresBackend:
    return PostgresBackend(server_url, tmp_path)


def _url_with(url: str, **changes: str) -> str:
    for old, new in changes.items():
        url = url.replace(old, new)
    return url


def _error(backend: PostgresBackend, url: str, **env: str) -> str:
    cfg = settings.load(
        backend.root,
        {"CIPIPE_HISTORY__URL": url, "CIPIPE_HISTORY__PG_SCHEMA": backend.schema("x"), **env},
    )
    with pytest.raises(HistoryError) as err, open_store(cfg):
        pass
    message = str(err.value)
    assert "\n" not in message
    for secret in (PASSWORD, WRONG):
        assert secret not in message
        assert secret not in repr(err.value)
    assert err.value.__cause__ is None
    return message


def test_the_store_authenticates_with_the_url_password(backend: PostgresBackend) -> None:
    with opened(backend) as store:
        assert store.backend == "postgres"
        assert PASSWORD not in store.location
        assert store.location == f"{mask_url(backend.url)} (schema {backend.schema('main')})"
        store.record(run(), [wall("a", 1.0)])
        assert store.series("bench.wall", "a")[0].value == 1.0


def test_wrong_password_is_one_line_without_any_password(backend: PostgresBackend) -> None:
    message = _error(backend, _url_with(backend.url, **{PASSWORD: WRONG}))
    assert "cannot connect" in message and "password authentication failed" in message
    assert "postgresql://postgres:***@127.0.0.1" in message


def test_unreachable_server_and_missing_database(backend: PostgresBackend) -> None:
    port = backend.url.rsplit(":", 1)[1].split("/")[0]
    closed = _url_with(backend.url, **{f":{port}/": ":1/"})
    assert "cannot connect" in _error(backend, closed, CIPIPE_HISTORY__CONNECT_TIMEOUT="2")
    nodb = backend.url.rsplit("/", 1)[0] + "/no_such_db"
    assert 'database "no_such_db" does not exist' in _error(backend, nodb)
    garbled = backend.url.replace("postgresql://", "postgresql://[")
    _error(backend, garbled)


def test_a_schema_holding_other_tables_is_refused(backend: PostgresBackend) -> None:
    backend.create_raw("foreign", 1, ("CREATE TABLE orders (id INT)",))
    with backend._conn("foreign") as conn:
        conn.execute("DROP TABLE schema_version")
    before = backend._conn("foreign").execute("SELECT count(*) FROM orders").fetchone()
    with (
        pytest.raises(HistoryError, match="holds tables but no schema_version"),
        opened(backend, "foreign"),
    ):
        pass
    with backend._conn("foreign") as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (backend.schema("foreign"),),
        ).fetchall()
    assert tables == [("orders",)] and before == (0,)


def test_a_dropped_connection_is_reopened(backend: PostgresBackend) -> None:
    with opened(backend) as store:
        store.record(run(minutes=0))
        with psycopg.connect(backend.url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'cipipe-history' AND pid <> pg_backend_pid()"
            )
        with pytest.raises(HistoryError) as err:
            store.record(run(minutes=1))
        assert PASSWORD not in str(err.value)
        store.record(run(minutes=2))  # the next operation reconnects
        assert len(store.runs()) == 2


def test_show_on_an_empty_database_creates_nothing(backend: PostgresBackend) -> None:
    assert show_history(backend.settings("empty")).endswith("nothing has been recorded")
    with psycopg.connect(backend.url) as conn:
        found = conn.execute(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s",
            (backend.schema("empty"),),
        ).fetchall()
    assert found == []


def test_moving_a_sqlite_history_to_postgres(backend: PostgresBackend, tmp_path: Path) -> None:
    local = settings.load(tmp_path, {"CIPIPE_HISTORY__PATH": str(tmp_path / "h.sqlite3")})
    with open_store(local) as store:
        store.record(run(meta={"mode": "wall", "base": "x"}), [wall("a", 1.5, low=1.0)])
        dep = store.start_deployment("production", "1.0", "sha256:1", trigger="push")
        store.finish_deployment(dep, "failed")
        buf = io.StringIO()
        store.export(buf)
        expected = (store.runs(), store.deployments())
    with opened(backend, "moved") as shared:
        assert shared.import_(io.StringIO(buf.getvalue())).runs_added == 1
        assert (shared.runs(), shared.deployments()) == expected
        assert shared.latest("bench", meta={"base": "x"}) == expected[0][0]


def test_question_marks_and_percents_in_the_sql_reach_the_server_intact(
    backend: PostgresBackend,
) -> None:
    """The shared SQL's `?` become psycopg's `%s` only where they are placeholders: a `?`
    or `%` in a literal, an identifier or a comment stays what it is, and values holding
    them go through untouched."""
    with opened(backend) as store, store._db.transaction(write=False) as tx:
        rows = tx.query(
            "SELECT 'why? 50%' AS \"what?\", ? AS v, $q$ x?%s $q$ AS d /* ? */ -- ?\n"
            " , ? AS n WHERE 'a%' LIKE 'a%%' OR ?::text IS NOT NULL",
            ("v?%s", 2, "?"),
        )
    assert rows == [("why? 50%", "v?%s", " x?%s ", 2)]


def test_names_and_values_with_question_marks_and_percents_round_trip(
    backend: PostgresBackend,
) -> None:
    with opened(backend) as store:
        store.record(run(meta={"mode": "wall?", "filter": "50%"}), [wall("what?/50%", 1.25)])
        assert store.series("bench.wall", "what?/50%")[0].value == 1.25
        assert store.latest("bench", meta={"mode": "wall?", "filter": "50%"}) is not None
