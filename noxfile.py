"""Pipeline stages as nox sessions. Each session is one line over `ci.stage.execute`;
the logic lives in `ci/`. Cargo-driving sessions create no virtualenv."""

from __future__ import annotations

import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "security", "unit", "integration"]
nox.options.error_on_missing_interpreters = True


def _stage(session: nox.Session, name: str) -> None:
    from ci.stage import execute

    code, line = execute(name, ROOT, session.posargs)
    if code:
        session.error(line)
    session.log(line)


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    """Formatting (cargo fmt --check) and lints (cargo clippy -D warnings)."""
    _stage(session, "lint")


@nox.session(venv_backend="none")
def security(session: nox.Session) -> None:
    """Advisories (cargo audit), dependency policy (cargo deny) and secret scan."""
    _stage(session, "security")


@nox.session(venv_backend="none")
def unit(session: nox.Session) -> None:
    """Library and binary tests (cargo nextest, JUnit) plus doc tests."""
    _stage(session, "unit")


@nox.session(venv_backend="none")
def integration(session: nox.Session) -> None:
    """Integration tests (cargo test --test '*') against real Postgres and Redis."""
    _stage(session, "integration")
