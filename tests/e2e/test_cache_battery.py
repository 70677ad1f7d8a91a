"""The soundness battery's rows that need real git, a real advisory database, the real
history store, the services or real `cargo metadata` (the fast-tier rows are in
tests/unit/test_cache_battery.py). Each applies one edit and asserts that the key of the
stage it affects changed, so that stage cannot be replayed; the issue's numbered cases
are marked `#n`. Keys are computed in-process as `invoke ci` computes them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cache_world import World, make_world
from helpers import FIXTURES, git, make_advisory_db

from ci.cache import StageCache
from ci.cache.affected import _keys
from ci.registry import get_stage
from ci.settings import load

pytestmark = pytest.mark.e2e


@pytest.fixture
def world(tmp_path: Path) -> World:
    """The cache world as a git repository with an advisory database, a cargo-deny
    policy, a secrets baseline, a nested repository and a submodule."""
    w = make_world(tmp_path)
    w.env["PATH"] = os.environ["PATH"]
    (tmp_path / "fixtures.txt").write_text("numbers v1\n")
    (w.ws / "app" / "fixtures.txt").symlink_to(tmp_path / "fixtures.txt")
    w.write(".gitignore", "/target/\n.env\n")
    w.write(".env", "MODE=a\n")
    w.write("deny.toml", "[licenses]\nallow = ['MIT']\n")
    w.write(".secrets.baseline", '{"results": {}}\n')
    sub = tmp_path / "sub-origin"
    sub.mkdir()
    git(sub, "init", "-q")
    (sub / "lib.rs").write_text("pub fn sub() {}\n")
    git(sub, "add", "-A")
    git(sub, "commit", "-qm", "sub")
    git(w.ws, "init", "-q")
    git(w.ws, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub), "sub")
    git(w.ws, "add", "-A")
    git(w.ws, "commit", "-qm", "world")
    nested = w.ws / "vendor" / "nested"
    nested.mkdir(parents=True)
    git(nested, "init", "-q")
    (nested / "lib.rs").write_text("pub fn nested() {}\n")
    db = make_advisory_db(tmp_path / "advisory-db")
    w.env.update(
        CIPIPE_SECURITY__ADVISORY_DB=str(db),
        CIPIPE_SECURITY__DENY_CONFIG=str(w.ws / "deny.toml"),
        CIPIPE_HISTORY__PATH=str(tmp_path / "history.sqlite3"),
        CIPIPE_SERVICES__BACKEND="local",
    )
    return w


Edit = Callable[[World], dict[str, str] | None]


@dataclass(frozen=True)
class Row:
    kind: str
    edit: Edit
    stage: str = "lint"
    base: tuple[tuple[str, str], ...] = ()  # environment of both keys
    prepare: Edit | None = None  # applied before the first key


def append(rel: str, text: str = "// changed\n") -> Edit:
    def edit(w: World) -> None:
        path = w.ws / rel
        path.write_text(path.read_text() + text)

    return edit


def new_commit(w: World) -> None:
    git(w.ws, "commit", "-q", "--allow-empty", "-m", "history grows")


def advisory_commit(w: World) -> None:
    db = w.root / "advisory-db"
    [advisory] = (db / "crates").rglob("*.md")
    advisory.write_text(advisory.read_text() + "\nUpdated.\n")
    git(db, "commit", "-qam", "new advisories")


def corrupt_index(w: World) -> None:
    """git's listing itself fails (a damaged index) while a file changes."""
    (w.ws / ".git" / "index").write_bytes(b"DIRC garbage")
    append("core/src/lib.rs")(w)


def break_submodule(w: World) -> None:
    """`git status` fails (exit 128: the submodule's git dir is gone) where `ls-files`
    still answers: the case the old key took as "nothing changed"."""
    (w.ws / "sub" / ".git").write_text("gitdir: /nonexistent\n")


ROWS = [
    Row("tracked file", append("core/src/lib.rs")),
    Row("untracked new file", lambda w: (w.ws / "core/src/extra.rs").write_text("fn x() {}\n")),
    Row("ignored but read (.env)", append(".env", "MODE=b\n")),
    Row("renamed", lambda w: (w.ws / "app/src/shared.rs").rename(w.ws / "app/src/common.rs")),
    Row("deleted", lambda w: (w.ws / "core/data/own.txt").unlink()),
    Row("staged rename (git mv)", lambda w: git(w.ws, "mv", "core/schema.txt", "core/s2.txt")),
    Row("mode bit", lambda w: (w.ws / "gen/build.rs").chmod(0o755)),
    Row("symlink target's content (#6)", lambda w: (w.root / "fixtures.txt").write_text("v2\n")),
    Row("file in a nested repository (#4)", append("vendor/nested/lib.rs")),
    Row("dirty submodule edited again (#4)", append("sub/lib.rs"), prepare=append("sub/lib.rs")),
    Row("git status failing (#2)", append("core/src/lib.rs"), prepare=break_submodule),
    Row("git ls-files failing (damaged index)", corrupt_index),
    Row("deny.toml", append("deny.toml", "[bans]\nmultiple-versions = 'deny'\n"), "security"),
    Row(".secrets.baseline", append(".secrets.baseline", "\n"), "security"),
    Row("advisory database commit", advisory_commit, "security"),
    Row(
        "git history when scan_history = true (#6)",
        new_commit,
        "security",
        (("CIPIPE_SECURITY__SCAN_HISTORY", "true"),),
    ),
    Row(
        "CODECOV_TOKEN set when the upload is required (#6)",
        lambda w: {"CODECOV_TOKEN": "a-token"},
        "coverage",
        (("CIPIPE_COVERAGE__CODECOV__REQUIRED", "true"),),
    ),
    Row("a security setting", lambda w: {"CIPIPE_SECURITY__UNMAINTAINED": "deny"}, "security"),
    Row(
        "service version",
        lambda w: {"CIPIPE_SERVICES__POSTGRES__VERSION": "16"},
        "integration",
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.kind for r in ROWS])
def test_every_kind_of_edit_changes_the_key_of_the_stage_it_affects(world: World, row: Row) -> None:
    base = dict(row.base)
    if row.prepare is not None:
        row.prepare(world)
    before = world.key(row.stage, **base)
    assert world.key(row.stage, **base) == before
    extra = row.edit(world)
    after = world.key(row.stage, **base, **(extra if isinstance(extra, dict) else {}))
    assert after != before, f"{row.kind}: {row.stage} would be replayed"


def test_a_workspace_inside_an_ignored_folder_of_an_outer_repository(tmp_path: Path) -> None:
    """#1: a checkout under a folder that is itself a repository ignoring everything."""
    w = make_world(tmp_path)
    w.env["PATH"] = os.environ["PATH"]
    outer = tmp_path / "outer"
    (outer / ".gitignore").write_text("*\n!.gitignore\n")
    git(outer, "init", "-q")
    git(outer, "add", ".gitignore")
    git(outer, "commit", "-qm", "dotfiles")
    assert git(w.ws, "ls-files") == ""  # what fooled the cache: git knows no file
    before = w.key("lint")
    append("core/src/lib.rs")(w)
    assert w.key("lint") != before


def test_history_is_an_input_only_when_scanned(world: World) -> None:
    plain = {"lint": world.key("lint"), "security": world.key("security")}
    new_commit(world)
    assert {"lint": world.key("lint"), "security": world.key("security")} == plain
    scanned = world.key("security", CIPIPE_SECURITY__SCAN_HISTORY="true")
    new_commit(world)
    assert world.key("security", CIPIPE_SECURITY__SCAN_HISTORY="true") != scanned


def test_the_advisory_database_age_class(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = world.key("security")
    later = time.time() + 8 * 86400  # a week later: the same commit is now "old"
    monkeypatch.setattr(time, "time", lambda: later)
    assert world.key("security") != fresh


def test_codecov_token_presence_when_the_upload_is_required(world: World) -> None:
    required = {"CIPIPE_COVERAGE__CODECOV__REQUIRED": "true"}
    without = world.key("coverage", **required)
    with_token = world.key("coverage", CODECOV_TOKEN="secret-1", **required)
    assert with_token != without
    # presence only: another value is the same key, and the value is in no input
    assert world.key("coverage", CODECOV_TOKEN="secret-2", **required) == with_token
    inputs = world.cache(CODECOV_TOKEN="secret-1", **required).inputs(get_stage("coverage"))
    assert inputs is not None and "secret-1" not in str(inputs.parts)
    # not required: a missing token only skips the upload with a note
    assert world.key("coverage") == world.key("coverage", CODECOV_TOKEN="secret-1")


def test_a_security_setting_replays_lint_unit_integration_and_bench(world: World) -> None:
    stages = ("lint", "unit", "integration", "bench")
    before = {s: world.key(s) for s in stages}
    after = {s: world.key(s, CIPIPE_SECURITY__WARN_AGE_DAYS="3") for s in stages}
    assert after == before
    assert world.key("security", CIPIPE_SECURITY__WARN_AGE_DAYS="3") != world.key("security")


def test_feature_unification_with_real_cargo_metadata(tmp_path: Path) -> None:
    """#3 with real `cargo metadata`: a member enabling a feature of another member
    changes that other member's key (the stages build --workspace)."""
    ws = tmp_path / "ws"
    shutil.copytree(FIXTURES / "two_packages", ws, ignore=shutil.ignore_patterns("target"))
    core = ws / "core" / "Cargo.toml"
    core.write_text(core.read_text() + "\n[features]\nfast = []\n")
    git(ws, "init", "-q")
    git(ws, "add", "-A")
    git(ws, "commit", "-qm", "two packages")

    def core_key() -> str:
        meta = subprocess.run(
            ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
            cwd=ws,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        env = {**os.environ, "CIPIPE_WORKSPACE": str(ws), "CIPIPE_CACHE__DIR": str(tmp_path / "c")}
        cache = StageCache.open(load(tmp_path, env))
        assert cache is not None
        keys = _keys(cache, get_stage("unit"), json.loads(meta), ws)
        assert keys is not None
        return keys["fixture-core"]

    before = core_key()
    app = ws / "app" / "Cargo.toml"
    app.write_text(
        app.read_text().replace('path = "../core" }', 'path = "../core", features = ["fast"] }')
    )
    assert core_key() != before
