"""Slow tier: real nox sessions, cargo, servers and containers."""

from __future__ import annotations

from pathlib import Path

import pytest

from .release_build import build, make_clone


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The corpus table (tests/e2e/test_corpus.py): each crate's verdicts and times."""
    from .corpus import cache_dir, table
    from .test_corpus import ROWS

    if ROWS:
        text = table(ROWS)
        terminalreporter.write_sep("-", "corpus: the pipeline on published crates")
        terminalreporter.write_line(text)
        report = cache_dir() / "report.md"
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(text + "\n", encoding="utf-8")


@pytest.fixture(scope="session")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone of this repository with the release tag on HEAD: a clean, tagged tree."""
    return make_clone(tmp_path_factory.mktemp("release") / "clone")


@pytest.fixture(scope="session")
def built(clone: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One real release build per session (into the shared target dir), packaged but
    not published: the output dir, the manifest and the run's output."""
    return build(clone, tmp_path_factory.mktemp("release-out"))
