"""Helpers to run the real entry points from tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def shared_target_dir() -> str:
    """One cargo target dir for every build the tests start (the fixtures are tiny
    crates with distinct names): the pipeline's own setting when CI exports it."""
    return os.environ.get("CIPIPE_CARGO_TARGET_DIR") or str(ROOT / "target")


def run_nox(sessions: list[str], env: dict[str, str], *args: str, timeout: float = 900):
    """`nox -s <sessions>` from the project root; returns the CompletedProcess."""
    cmd = [sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "-s", *sessions, *args]
    return subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def run_invoke(args: list[str], env: dict[str, str], timeout: float = 900):
    """`invoke <args>` from the project root."""
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


ADVISORY_ID = "RUSTSEC-2099-0001"
ADVISORY = f"""```toml
[advisory]
id = "{ADVISORY_ID}"
package = "itoa"
date = "2099-01-01"
url = "https://example.invalid/{ADVISORY_ID}"
categories = ["memory-corruption"]
keywords = ["test"]

[versions]
patched = [">= 1.0.19"]
```

# Test advisory for the pipeline's security gate

Not a real vulnerability: the pipeline's tests mark this itoa version vulnerable.
"""


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


def make_advisory_db(db: Path) -> Path:
    """A one-advisory database in the RustSec layout, as a git repository (cargo-deny
    reads the last commit time from it). Used in offline mode: nothing is fetched."""
    (db / "crates" / "itoa").mkdir(parents=True)
    (db / "crates" / "itoa" / f"{ADVISORY_ID}.md").write_text(ADVISORY, encoding="utf-8")
    git(db, "init", "-q")
    git(db, "add", "-A")
    git(db, "commit", "-qm", "test advisory database")
    return db


REAL_DB_SNAPSHOT = FIXTURES / "security" / "rustsec-advisory-db.tar.gz"
REAL_DB_DATE = "2026-08-21T06:28:40Z"  # the snapshot's upstream commit time


def unpack_real_advisory_db(dest: Path) -> Path:
    """The real RustSec snapshot unpacked and committed (dated like upstream's commit):
    cargo-audit and cargo-deny open the database as a git repository."""
    import tarfile

    with tarfile.open(REAL_DB_SNAPSHOT) as tar:
        tar.extractall(dest, filter="data")
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    env_date = {"GIT_AUTHOR_DATE": REAL_DB_DATE, "GIT_COMMITTER_DATE": REAL_DB_DATE}
    subprocess.run(
        ["git", "commit", "-qm", "snapshot"],
        cwd=dest,
        env={
            **os.environ,
            **env_date,
            "GIT_AUTHOR_NAME": "s",
            "GIT_AUTHOR_EMAIL": "s@x",
            "GIT_COMMITTER_NAME": "s",
            "GIT_COMMITTER_EMAIL": "s@x",
        },
        check=True,
        capture_output=True,
    )
    return dest


def docker_problem() -> str | None:
    """None when a Docker engine answers, else why not (bounded: a hung daemon socket
    must not hang test collection)."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    try:
        proc = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 20s"
    return None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["?"])[-1]


def stand_in_project(tmp_path: Path, monkeypatch, module: str, source: str) -> Path:
    """A project for `ci.stage.execute` tests: stand-in stage functions importable as
    `module`, and a one-package workspace `<tmp_path>/ws`; returns the workspace."""
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "Cargo.toml").write_text('[package]\nname = "x"\nversion = "0.1.0"\n')
    return ws
