"""The base revision in a temporary git worktree, removed afterwards whatever happens.

The worktree lives at a stable path per repository (`[bench] worktree`, default
`<tmp>/cipipe-bench-<hash of the repository path>`), so the base side's target dir
keeps its compiled workspace crates from one run to the next. A leftover of a killed
run (registered, clean) is removed and replaced; anything else in the way (uncommitted
changes, a directory that is not our worktree) stops the run with one line, untouched.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from ci import interrupts
from ci.errors import BenchError, ConfigError
from ci.runner import Runner


@dataclass(frozen=True)
class Checkout:
    """The base revision checked out: the worktree root, the workspace inside it (the
    same relative place as the head workspace in its repository), and the commit."""

    root: Path
    workspace: Path
    commit: str


def _git(runner: Runner, cwd: Path, *args: str) -> tuple[bool, str, str]:
    res = runner.run(["git", *args], cwd=cwd, capture=True, echo_output=False)
    return res.ok, res.stdout.strip(), res.stderr.strip()


def repo_root(runner: Runner, workspace: Path) -> Path:
    """The top of the git repository holding `workspace`; ConfigError when there is none."""
    ok, out, _ = _git(runner, workspace, "rev-parse", "--show-toplevel")
    if not ok or not out:
        raise ConfigError(
            f"--base needs git: the workspace {workspace} is not inside a git repository"
        )
    return Path(out).resolve()


def resolve_commit(runner: Runner, repo: Path, ref: str) -> str:
    """The full SHA `ref` names; ConfigError (one line) when it names no commit."""
    if not ref.strip() or ref.startswith("-"):
        raise ConfigError(f"--base {ref!r}: not a git revision")
    ok, out, _ = _git(runner, repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if not ok or not out:
        raise ConfigError(
            f"--base {ref}: no such commit in {repo} (a branch, tag or SHA; "
            "fetch it first on a shallow CI checkout: git fetch origin <branch>)"
        )
    return out


def default_path(repo: Path) -> Path:
    """`<tmp>/cipipe-bench-<hash>`: stable for a repository, distinct between clones."""
    digest = hashlib.sha256(str(repo).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"cipipe-bench-{digest}"


def _registered(runner: Runner, repo: Path) -> set[Path]:
    ok, out, _ = _git(runner, repo, "worktree", "list", "--porcelain")
    if not ok:
        return set()
    return {
        Path(line[len("worktree ") :]).resolve()
        for line in out.splitlines()
        if line.startswith("worktree ")
    }


def clear_path(runner: Runner, repo: Path, path: Path) -> None:
    """Make room at `path`: remove our own clean leftover; refuse anything else."""
    _git(runner, repo, "worktree", "prune")
    if not path.exists():
        return
    if path.resolve() in _registered(runner, repo):
        ok, out, _ = _git(runner, path, "status", "--porcelain", "--untracked-files=no")
        if not ok or out:
            raise ConfigError(
                f"the base worktree path {path} has uncommitted changes: keep them elsewhere, "
                f"then `git worktree remove --force {path}` (or set [tool.pipeline.bench] worktree)"
            )
        runner.say(f"bench: removing the leftover base worktree {path} of an earlier run")
        remove(runner, repo, path)
        return
    if path.is_dir() and not any(path.iterdir()):
        path.rmdir()
        return
    raise ConfigError(
        f"the base worktree path {path} is in the way (not a worktree of {repo}): remove it "
        "or set [tool.pipeline.bench] worktree / CIPIPE_BENCH__WORKTREE to another path"
    )


def remove(runner: Runner, repo: Path, path: Path) -> None:
    """Remove the worktree at `path` and its registration, even if git cannot."""
    with interrupts.shield():
        ok, _, _ = _git(runner, repo, "worktree", "remove", "--force", str(path))
        if not ok or path.exists():
            shutil.rmtree(path, ignore_errors=True)
        with suppress(Exception):
            _git(runner, repo, "worktree", "prune")


@contextmanager
def base_checkout(
    runner: Runner, workspace: Path, ref: str, path: Path | None = None
) -> Iterator[Checkout]:
    """Check `ref` out (detached) in a worktree of the repository holding `workspace`;
    yields where its workspace is. The worktree is removed on every way out: success,
    failure, Ctrl-C, SIGTERM, the stage's hard limit."""
    repo = repo_root(runner, workspace)
    commit = resolve_commit(runner, repo, ref)
    where = (path or default_path(repo)).resolve()
    if where == repo or repo in where.parents or where in repo.parents:
        raise ConfigError(f"the base worktree path {where} overlaps the repository {repo}")
    clear_path(runner, repo, where)
    relative = workspace.resolve().relative_to(repo)
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        ok, _, err = _git(
            runner, repo, "worktree", "add", "--detach", "--quiet", str(where), commit
        )
        if not ok:
            line = err.splitlines()[-1] if err else "git worktree add failed"
            raise BenchError(f"cannot check out {ref} ({commit[:12]}) at {where}: {line}")
        runner.say(f"bench: base {ref} ({commit[:12]}) checked out at {where}")
        yield Checkout(where, where / relative, commit)
    finally:
        remove(runner, repo, where)
        runner.say(f"bench: base worktree {where} removed")
