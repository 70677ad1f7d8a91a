"""The history store on SQLite files (no processes): the shared behaviour suite, plus
what only a file can get wrong (corruption, foreign files, locks) and the run context."""

from __future__ import annotations

import json
import socket
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from history_behaviour import *  # noqa: F403
from history_behaviour import SHA_A, T0, opened, run, wall

from ci import errors, settings
from ci.errors import ConfigError, HistoryError
from ci.history import GitState, current_context, location, open_store, utc_now
from ci.history.context import ci_run_id, machine_identity, parse_git_status
from ci.history.postgres import mask_url
from ci.history.schema import LATEST
from ci.history.sqlite import APPLICATION_ID
from ci.history.tasks import export_history, import_history, show_history

ROOT = Path(__file__).resolve().parents[2]


class SqliteBackend:
    name = "sqlite"

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp

    def path(self, place: str) -> Path:
        return self.tmp / place / "history.sqlite3"

    def settings(self, place: str = "main", **env: str) -> settings.Settings:
        return settings.load(self.tmp, {"CIPIPE_HISTORY__PATH": str(self.path(place)), **env})

    def create_raw(self, place: str, version: int, statements: tuple[str, ...]) -> None:
        self.path(place).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path(place))
        for statement in statements:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {version}")
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.commit()
        conn.close()

    def set_version(self, place: str, version: int) -> None:
        conn = sqlite3.connect(self.path(place))
        conn.execute(f"PRAGMA user_version = {version}")
        conn.close()

    def version(self, place: str) -> int:
        conn = sqlite3.connect(self.path(place))
        try:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])
        finally:
            conn.close()

    def fingerprint(self, place: str) -> dict[str, bytes]:
        folder = self.path(place).parent
        return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def backend(tmp_path: Path) -> SqliteBackend:
    return SqliteBackend(tmp_path)


# --- the file ----------------------------------------------------------------------


def test_default_path_is_outside_target_and_ignored_by_git(tmp_path: Path) -> None:
    cfg = settings.load(tmp_path, {})
    assert location(cfg) == str(tmp_path.resolve() / ".pipeline" / "history.sqlite3")
    assert ".pipeline/" in (ROOT / ".gitignore").read_text().splitlines()
    with open_store(cfg) as store:
        assert store.backend == "sqlite"
    assert (tmp_path / ".pipeline" / "history.sqlite3").is_file()


def test_new_file_is_wal_versioned_and_marked(backend: SqliteBackend) -> None:
    with opened(backend):
        pass
    conn = sqlite3.connect(backend.path("main"))
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    conn.close()


@pytest.mark.parametrize(
    "content",
    [b"this is not a database\n" * 50, b"SQLite format 3\x00" + b"\xff" * 4000],
    ids=["garbage", "sqlite-header-then-garbage"],
)
def test_corrupt_file_is_one_line_and_untouched(backend: SqliteBackend, content: bytes) -> None:
    path = backend.path("main")
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(HistoryError) as err, opened(backend):
        pass
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message
    assert "left untouched" in message
    assert path.read_bytes() == content
    assert sorted(p.name for p in path.parent.iterdir()) == ["history.sqlite3"]
    assert err.value.exit_code == 7


def test_another_programs_database_is_refused(backend: SqliteBackend) -> None:
    path = backend.path("main")
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE runs (x)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with (
        pytest.raises(HistoryError, match="another program, not a pipeline history"),
        opened(backend),
    ):
        pass
    assert path.read_bytes() == before


def test_directory_and_unwritable_paths_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite3").mkdir()
    cfg = settings.load(tmp_path, {"CIPIPE_HISTORY__PATH": str(tmp_path / "dir.sqlite3")})
    with pytest.raises(HistoryError, match="is a directory"), open_store(cfg):
        pass
    (tmp_path / "file").write_text("x")
    cfg = settings.load(tmp_path, {"CIPIPE_HISTORY__PATH": str(tmp_path / "file" / "h.db")})
    with pytest.raises(HistoryError, match=r"h\.db"), open_store(cfg):
        pass


def test_open_without_create_does_not_create(backend: SqliteBackend) -> None:
    with pytest.raises(HistoryError, match="nothing has been recorded yet"):
        open_store(backend.settings(), create=False).__enter__()
    assert not backend.path("main").parent.exists()


def test_a_writer_blocked_past_the_busy_timeout_gets_one_line(backend: SqliteBackend) -> None:
    with opened(backend):
        pass
    holder = sqlite3.connect(backend.path("main"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        cfg = backend.settings(CIPIPE_HISTORY__BUSY_TIMEOUT="0.2")
        with open_store(cfg) as store:
            with pytest.raises(HistoryError, match=r"stayed locked by another writer for 0\.2s"):
                store.record(run())
            assert store.runs() == []  # readers are not blocked by the writer (WAL)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_history_error_has_its_own_exit_code() -> None:
    codes = [
        cls.__dict__["exit_code"]
        for cls in vars(errors).values()
        if isinstance(cls, type) and "exit_code" in cls.__dict__
    ]
    assert HistoryError.exit_code == 7 and errors.NoHistoryYet.exit_code == 7
    assert codes.count(7) == 1


# --- configuration and the Postgres URL (no server needed) ---------------------------


def test_a_password_in_pyproject_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pipeline.history]\nurl = "postgres://ci:hunter2-planted@db.example/h"\n'
    )
    cfg = settings.load(tmp_path, {})
    with pytest.raises(ConfigError) as err, open_store(cfg):
        pass
    assert "hunter2-planted" not in str(err.value)
    assert "CIPIPE_HISTORY__URL" in str(err.value)


def test_url_from_the_environment_is_shown_masked(tmp_path: Path) -> None:
    url = "postgresql://ci:s3cr%40t-planted@db.example:5433/hist?sslmode=require"
    cfg = settings.load(tmp_path, {"CIPIPE_HISTORY__URL": url})
    shown = location(cfg)
    assert shown == (
        "postgresql://ci:***@db.example:5433/hist?sslmode=require (schema pipeline_history)"
    )
    assert mask_url("postgres://ci@h/db") == "postgres://ci@h/db"
    assert "planted" not in mask_url("host=h password=planted")
    assert "planted" not in mask_url("postgres://u:planted@h:notaport/db")


def test_unreachable_postgres_is_one_line_without_the_password(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    url = f"postgres://ci:Pl4nted%2Fpw@127.0.0.1:{port}/history"
    cfg = settings.load(
        tmp_path, {"CIPIPE_HISTORY__URL": url, "CIPIPE_HISTORY__CONNECT_TIMEOUT": "2"}
    )
    with pytest.raises(HistoryError) as err, open_store(cfg):
        pass
    message = str(err.value)
    assert "\n" not in message
    assert "Pl4nted" not in message
    assert f"127.0.0.1:{port}" in message and "cannot connect" in message
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_bad_pg_schema_name_is_a_config_error(tmp_path: Path) -> None:
    cfg = settings.load(
        tmp_path,
        {"CIPIPE_HISTORY__URL": "postgres://u@127.0.0.1:1/x", "CIPIPE_HISTORY__PG_SCHEMA": "a;b"},
    )
    with pytest.raises(ConfigError, match="pg_schema"), open_store(cfg):
        pass


# --- the run context ------------------------------------------------------------------


def test_git_status_parsing() -> None:
    clean = "# branch.oid " + SHA_A + "\n# branch.head main\n# branch.upstream origin/main\n"
    assert parse_git_status(clean) == GitState(SHA_A, "main", False)
    dirty = "# branch.oid " + SHA_A + "\n# branch.head (detached)\n1 .M N... 100644 x y z a.rs\n"
    assert parse_git_status(dirty) == GitState(SHA_A, "", True)
    assert parse_git_status("# branch.oid (initial)\n# branch.head main\n").commit == ""


def test_context_on_github_actions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_RUN_ID", "999")  # os.environ must not be read
    env = {
        "GITHUB_RUN_ID": "123456",
        "GITHUB_RUN_ATTEMPT": "2",
        "GITHUB_HEAD_REF": "feature/x",
        "GITHUB_REF_NAME": "17/merge",
        "GITHUB_REF_TYPE": "branch",
        "GITHUB_SHA": "f" * 40,
    }
    cfg = settings.load(tmp_path, env)
    info = current_context(
        cfg, "bench", meta={"mode": "wall"}, tool_versions={"cargo": "1.88"},
        git=GitState(SHA_A, "", False), now=T0,
    )  # fmt: skip
    assert (info.kind, info.commit, info.branch, info.run_id) == (
        "bench", SHA_A, "feature/x", "123456/2",
    )  # fmt: skip
    assert info.started_at == T0 and info.finished_at is None and info.status == "running"
    assert info.meta == {"mode": "wall"} and info.tool_versions == {"cargo": "1.88"}
    done = info.finished("passed", at=T0.replace(minute=5))
    assert done.status == "passed" and done.duration_s == 300


def test_context_push_fallbacks_and_overrides(tmp_path: Path) -> None:
    env = {"GITHUB_REF_NAME": "main", "GITHUB_REF_TYPE": "branch", "GITHUB_SHA": "e" * 40}
    info = current_context(settings.load(tmp_path, env), "ci", git=GitState("", "", False))
    assert (info.commit, info.branch) == ("e" * 40, "main")
    assert len(info.run_id) == 32  # a fresh uuid outside CI
    local = current_context(settings.load(tmp_path, {}), "ci", git=GitState(SHA_A, "dev", True))
    assert (local.commit, local.branch, local.dirty) == (SHA_A, "dev", True)
    assert (
        local.machine
        == current_context(settings.load(tmp_path, {}), "ci", git=GitState("", "", False)).machine
    )
    pinned = settings.load(
        tmp_path, {"CIPIPE_HISTORY__MACHINE": "gha-4core", "CIPIPE_HISTORY__RUN_ID": "flow-7"}
    )
    info = current_context(pinned, "ci", git=GitState(SHA_A, "main", False))
    assert (info.machine.id, info.run_id) == ("gha-4core", "flow-7")
    assert ci_run_id({"GITHUB_RUN_ID": "5"}) == "5"


def test_machine_identity_is_stable_and_hardware_specific() -> None:
    a = machine_identity("runner-1", "AMD EPYC 7763", 4)
    assert a == machine_identity("runner-1", "AMD EPYC 7763", 4)
    assert len(a.id) == 12 and a.label == "runner-1 (AMD EPYC 7763, 4 cores)"
    assert a.id != machine_identity("runner-1", "AMD EPYC 7763", 2).id
    assert a.id != machine_identity("runner-2", "AMD EPYC 7763", 4).id


# --- the invoke task functions -----------------------------------------------------------


def test_export_import_show_functions(backend: SqliteBackend, tmp_path: Path) -> None:
    src, dst = backend.settings("ci-1"), backend.settings("ci-2")
    assert show_history(dst).endswith("nothing has been recorded yet")
    assert not backend.path("ci-2").exists()
    with open_store(src) as store:
        rid = store.record(run(), [wall("a", 1.0)])
        store.record(run("ci", minutes=1, dirty=True, status="failed"))
        dep = store.start_deployment("production", "1.0", "sha256:a", trigger="push", at=T0)
        store.finish_deployment(dep, "failed", at=T0.replace(minute=1))
        store.mark_recovered(dep, T0.replace(minute=3))
    out = tmp_path / "artifact" / "history.jsonl"
    assert export_history(src, out).startswith("exported 2 runs (1 measurements) and 1 deploy")
    assert json.loads(out.read_text().splitlines()[0])["format"] == "cipipe-history"
    assert "imported 2 runs (0 already present), 1 deployments" in import_history(dst, out)
    assert "imported 0 runs (2 already present)" in import_history(dst, out)
    table = show_history(dst)
    lines = table.splitlines()
    assert lines[0].startswith(str(backend.path("ci-2")))
    assert lines[1].split() == [
        "started", "(UTC)", "kind", "status", "branch", "commit", "machine", "took", "values", "id",
    ]  # fmt: skip
    assert "2024-05-01 12:00:00  bench  passed" in lines[3]
    assert rid[:12] in lines[3] and "42.5s" in lines[3]
    assert SHA_A[:12] + "+" in lines[4]  # dirty
    assert len(show_history(dst, kind="ci").splitlines()) == 4
    deps = show_history(dst, deployments=True)
    assert "production" in deps and "failed" in deps and "120s" in deps
    assert "no runs recorded" in show_history(dst, kind="release")


def test_import_task_missing_and_bad_files(backend: SqliteBackend, tmp_path: Path) -> None:
    cfg = backend.settings()
    missing = tmp_path / "none.jsonl"
    assert "nothing imported" in import_history(cfg, missing, missing_ok=True)
    with pytest.raises(HistoryError, match="no such history export"):
        import_history(cfg, missing)
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(HistoryError, match="not a text file"):
        import_history(cfg, binary)


def test_export_since_days_keeps_recent_records(backend: SqliteBackend, tmp_path: Path) -> None:
    with opened(backend) as store:
        store.record(run(minutes=0))  # May 2024: outside any recent window
        store.record(replace(run(), started_at=utc_now(), finished_at=None))
    out = tmp_path / "recent.jsonl"
    assert export_history(backend.settings(), out, since_days=7).startswith("exported 1 runs")
    assert len(out.read_text().splitlines()) == 2


def test_time_to_restore_is_never_negative() -> None:
    """A rollback that restored service inside the rollout, its record closed later."""
    from datetime import timedelta

    from ci.history.records import Deployment

    dep = Deployment(
        "d1", "production", "1.2.0", "sha256:" + "a" * 64, T0,
        T0 + timedelta(minutes=5), "rolled_back", "manual",
        recovered_at=T0 + timedelta(minutes=2),
    )  # fmt: skip
    assert dep.time_to_restore == timedelta(0)
    later = replace(dep, recovered_at=T0 + timedelta(minutes=8))
    assert later.time_to_restore == timedelta(minutes=3)
