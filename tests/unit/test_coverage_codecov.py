"""The Codecov upload's pure parts: metadata from the CI environment, the official CLI's
command line (token never on it, telemetry off), finding the CLI, and its failures as one
line (the upload itself runs through the CLI against the fake in tests/e2e)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from ci import settings
from ci.coverage.codecov import UploadError, command, explain, find_cli, metadata
from ci.coverage.config import load

ROOT = Path(__file__).resolve().parents[2]


def test_metadata_from_a_pull_request_run_on_github_actions() -> None:
    cfg = load(settings.load(ROOT, {"CIPIPE_COVERAGE__CODECOV__FLAGS": "rust,unit"}))
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "acme/trading",
        "GITHUB_REF": "refs/pull/42/merge",
        "GITHUB_HEAD_REF": "feature",
        "GITHUB_RUN_ID": "991",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_WORKFLOW": "ci",
    }
    meta = metadata(cfg.codecov, env, "c" * 40, "feature")
    assert (meta.slug, meta.pull_request, meta.branch) == ("acme/trading", "42", "feature")
    assert meta.build_url == "https://github.com/acme/trading/actions/runs/991"
    assert meta.flags == ("rust", "unit")  # the CLI detects GitHub Actions itself


def test_metadata_of_a_local_run_has_no_pull_request() -> None:
    cfg = load(settings.load(ROOT, {"CIPIPE_COVERAGE__CODECOV__SLUG": "acme/x"}))
    meta = metadata(cfg.codecov, {"GITHUB_REF": "refs/pull/42/merge"}, "c" * 40, "main")
    assert (meta.slug, meta.pull_request, meta.build_url) == ("acme/x", "", "")


def test_the_cli_command_has_no_token_and_no_telemetry() -> None:
    cfg = load(settings.load(ROOT, {"CIPIPE_COVERAGE__CODECOV__URL": "http://127.0.0.1:9"}))
    meta = metadata(cfg.codecov, {"GITHUB_REPOSITORY": "acme/trading"}, "c" * 40, "main")
    argv = command("codecovcli", cfg.codecov, Path("/o/cobertura.xml"), meta, Path("/w"))
    assert argv[:5] == [
        "codecovcli",
        "--disable-telem",
        "--url",
        "http://127.0.0.1:9",
        "upload-coverage",
    ]
    pairs = dict(itertools.pairwise(argv))
    assert pairs["--file"] == "/o/cobertura.xml" and pairs["--plugin"] == "noop"
    assert pairs["--sha"] == "c" * 40 and pairs["--slug"] == "acme/trading"
    assert pairs["--git-service"] == "github" and pairs["--branch"] == "main"
    assert "--disable-search" in argv and "--fail-on-error" in argv
    assert not {"-t", "--token"} & set(argv)  # the token goes through CODECOV_TOKEN only
    assert "--pr" not in argv  # empty metadata is left out, not sent empty


def test_a_repository_that_is_not_owner_name_is_refused_before_the_cli_runs() -> None:
    cfg = load(settings.load(ROOT, {})).codecov
    with pytest.raises(UploadError, match="owner/name, got 'trading'"):
        command(
            "codecovcli",
            cfg,
            Path("r.xml"),
            metadata(cfg, {}, "c" * 40, "").__class__(commit="c" * 40, slug="trading"),
            Path("."),
        )


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (
            "info - 2026-12-07 14:59:18,572 -- ci service found: local\n"
            "error - 2026-12-07 14:59:18,742 -- Upload queued for processing failed: "
            '{"detail": "Invalid token."}\n',
            "Codecov rejected CODECOV_TOKEN (codecovcli: Upload queued for processing failed: "
            '{"detail": "Invalid token."}): set a valid upload token',
        ),
        (
            "error - 2026-12-07 14:59:18,742 -- Upload queued for processing failed: "
            '{"detail": "Repository not found."}\n',
            "Codecov does not know acme/x (codecovcli: ",
        ),
        (
            "Traceback (most recent call last):\n  ...\nException: Request failed after too "
            "many retries. URL: http://h/upload\n",
            "Codecov at http://h did not take the upload, even after the CLI's retries",
        ),
        ("Usage: codecovcli [OPTIONS]\nError: No such option: --bogus\n", "exit 2: Error: No"),
    ],
)
def test_cli_failures_become_one_line_that_says_what_to_do(output: str, expected: str) -> None:
    line = explain(output, 2, "acme/x", "http://h")
    assert expected in line and "\n" not in line


def test_the_cli_is_found_beside_the_stages_python_then_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv, other = tmp_path / "venv" / "bin", tmp_path / "path"
    for folder in (venv, other):
        folder.mkdir(parents=True)
        (folder / "codecovcli").write_text("#!/bin/sh\n")
        os.chmod(folder / "codecovcli", 0o755)
    monkeypatch.setenv("PATH", str(other))
    assert find_cli(str(venv / "python")) == str(venv / "codecovcli")
    assert find_cli(str(tmp_path / "python")) == str(other / "codecovcli")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(UploadError, match="not installed here: run the stage as `nox -s coverage`"):
        find_cli(str(tmp_path / "python"))
