"""Shared fixtures: an environment that points the pipeline at a fixture crate."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import FIXTURES, make_advisory_db, shared_target_dir, unpack_real_advisory_db


@pytest.fixture
def fixture_env(tmp_path: Path):
    """Factory: environment running the pipeline on `tests/fixtures/<name>`."""

    def make(name: str, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CIPIPE_")}
        env.pop("GITHUB_ACTIONS", None)
        env.update(
            CIPIPE_WORKSPACE=str(FIXTURES / name),
            CIPIPE_OUTPUT_DIR=str(tmp_path / "out"),
            CIPIPE_CARGO_TARGET_DIR=shared_target_dir(),
            # never the developer's own history (.pipeline/ of the checkout)
            CIPIPE_HISTORY__PATH=str(tmp_path / "history.sqlite3"),
            # Every test sees real runs; tests of the stage cache turn it on themselves.
            CIPIPE_CACHE__ENABLED="false",
        )
        env.update(extra)
        return env

    return make


@pytest.fixture(scope="session")
def advisory_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small local RustSec advisory database (offline mode)."""
    return make_advisory_db(tmp_path_factory.mktemp("advisory-db"))


@pytest.fixture(scope="session")
def real_advisory_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The snapshot of the real RustSec database, as the git checkout the tools expect."""
    return unpack_real_advisory_db(tmp_path_factory.mktemp("rustsec"))
