"""Bad input: one clear line, non-zero exit, no traceback, nothing left running."""

from __future__ import annotations

import json
import socket
import sys
import tempfile
from pathlib import Path

from helpers import run_invoke, run_nox

from .leftovers import assert_nothing_left


def assert_clean_failure(r, expected: str) -> str:
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "Traceback" not in out, out
    assert expected in out, out
    return out


def test_not_a_cargo_workspace(fixture_env, tmp_path: Path) -> None:
    env = fixture_env("clean", CIPIPE_WORKSPACE=str(tmp_path))
    r = run_nox(["lint"], env)
    assert_clean_failure(r, "is not a Cargo workspace: no Cargo.toml")
    data = json.loads((Path(env["CIPIPE_OUTPUT_DIR"]) / "lint.json").read_text())
    assert data["status"] == "error"


def test_cargo_missing(fixture_env) -> None:
    env = fixture_env("clean", PATH=f"/nonexistent:{Path(sys.executable).parent}")
    r = run_nox(["lint"], env)
    assert_clean_failure(r, "cargo not found on PATH: install Rust with rustup")


def test_unknown_session(fixture_env) -> None:
    r = run_nox(["deploy-to-the-moon"], fixture_env("clean"))
    assert_clean_failure(r, "deploy-to-the-moon")


def test_unknown_stage_in_invoke_ci(fixture_env) -> None:
    r = run_invoke(["ci", "--stages", "lint,moon"], fixture_env("clean"))
    out = assert_clean_failure(r, "unknown stage(s) moon; known stages: lint")
    assert len([line for line in out.splitlines() if line.strip()]) == 1


def test_malformed_pipeline_value(fixture_env) -> None:
    env = fixture_env("clean", CIPIPE_BUDGETS__LINT="fast")
    r = run_nox(["lint"], env)
    assert_clean_failure(r, "budgets.lint (or $CIPIPE_BUDGETS__LINT): expected a number")
    data = json.loads((Path(env["CIPIPE_OUTPUT_DIR"]) / "lint.json").read_text())
    assert data["status"] == "error" and "budgets.lint" in data["summary"]


def test_malformed_value_in_invoke_ci(fixture_env) -> None:
    r = run_invoke(["ci"], fixture_env("clean", CIPIPE_PARALLELISM="many"))
    assert_clean_failure(r, "parallelism (or $CIPIPE_PARALLELISM): expected a whole number")


def test_port_already_taken(fixture_env) -> None:
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = fixture_env("clean", CIPIPE_SERVICES__REDIS__PORT=str(port))
        r = run_nox(["integration"], env)
    assert_clean_failure(r, f"redis: port {port} is already in use")
    # postgres was started before redis failed: it must be gone again
    assert_nothing_left(Path(env["CIPIPE_OUTPUT_DIR"]) / "integration.log", expect=1)


def test_service_never_ready(fixture_env) -> None:
    def workdirs() -> set[str]:
        return {p.name for p in Path(tempfile.gettempdir()).glob("pipeline-*")}

    before = workdirs()
    env = fixture_env("clean", CIPIPE_SERVICES__STARTUP_TIMEOUT="0.001")
    r = run_nox(["integration"], env)
    assert_clean_failure(r, "not ready after 0.001s")
    assert workdirs() <= before, "a service data dir was left behind"


def test_unknown_service_backend(fixture_env) -> None:
    r = run_nox(["integration"], fixture_env("clean", CIPIPE_SERVICES__BACKEND="podman"))
    assert_clean_failure(r, "services.backend (or $CIPIPE_SERVICES__BACKEND): expected one of")
