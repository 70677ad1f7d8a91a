"""`invoke hooks.install`: a hook that only checks. A commit of unformatted code is refused
and the working tree is exactly as it was; a hook we did not write is never replaced
without --force."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import FIXTURES, ROOT, git, run_invoke

from ci import hooks
from ci.errors import ConfigError, PipelineError


def repo_with(tmp_path: Path, fixture: str) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / fixture, repo)
    shutil.copy(FIXTURES / "rustfmt.toml", repo / "rustfmt.toml")
    git(repo, "init", "-q")
    return repo


def test_pre_commit_hook_refuses_unformatted_code_and_rewrites_nothing(
    tmp_path: Path, fixture_env
) -> None:
    repo = repo_with(tmp_path, "fmt_fault")
    hooks.install(ROOT, "pre-commit", into=repo / ".git" / "hooks")
    before = (repo / "src" / "lib.rs").read_text()
    env = fixture_env("fmt_fault", CIPIPE_WORKSPACE=str(repo))
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@x", GIT_COMMITTER_NAME="t")
    env.update(GIT_COMMITTER_EMAIL="t@x")
    subprocess.run(["git", "add", "-A"], cwd=repo, env=env, check=True)
    r = subprocess.run(
        ["git", "commit", "-qm", "unformatted"], cwd=repo, env=env, capture_output=True, text=True
    )
    assert r.returncode != 0, r.stdout + r.stderr
    assert "src/lib.rs:1: not formatted" in r.stdout + r.stderr
    assert (repo / "src" / "lib.rs").read_text() == before  # checked, never formatted
    assert subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True).returncode
    assert git(repo, "status", "--porcelain").count("\n") >= 1  # still staged, uncommitted


def test_hook_content_is_check_only(tmp_path: Path) -> None:
    text = hooks.hook_text("pre-commit", ROOT)
    assert "ci --stages lint,unit --fail-fast" in text
    assert "fmt" not in text.replace("format", "")  # never `invoke fmt` / `cargo fmt`
    push = hooks.hook_text("pre-push", ROOT)
    assert "ci --stages lint,unit,integration --fail-fast" in push


def test_foreign_hook_is_kept_unless_forced(tmp_path: Path) -> None:
    into = tmp_path / "hooks"
    into.mkdir()
    (into / "pre-commit").write_text("#!/bin/sh\necho mine\n")
    with pytest.raises(PipelineError, match="not written by this pipeline; re-run with --force"):
        hooks.install(ROOT, "pre-commit", into=into)
    assert (into / "pre-commit").read_text() == "#!/bin/sh\necho mine\n"
    hooks.install(ROOT, "pre-commit", into=into, force=True)
    assert (into / "pre-commit.backup").read_text() == "#!/bin/sh\necho mine\n"
    assert hooks.MARKER in (into / "pre-commit").read_text()
    hooks.install(ROOT, "pre-commit", into=into)  # ours: replaced without --force
    with pytest.raises(ConfigError, match="unknown hook"):
        hooks.install(ROOT, "post-merge", into=into)


def test_invoke_hooks_install_refusal_is_one_line(tmp_path: Path, fixture_env) -> None:
    r = run_invoke(["hooks.install", "--hook", "post-merge"], fixture_env("clean"))
    assert r.returncode == 3 and "Traceback" not in r.stdout + r.stderr
    assert "unknown hook 'post-merge'" in r.stderr
