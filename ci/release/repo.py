"""Git facts the release checks: HEAD, the tag's commit, uncommitted changes, commit time.

Read-only probes through the runner; `problems` turns the facts into one-line reasons
with their fixes (pure, unit-tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ci.release.errors import PreconditionFailed
from ci.runner import Runner


@dataclass(frozen=True)
class GitState:
    """What git says about the workspace's repository for one tag."""

    head: str
    tag_commit: str | None  # None: the tag does not exist
    changes: tuple[str, ...]  # `git status --porcelain` lines (untracked files included)
    head_time: int  # committer time of HEAD, seconds since the epoch
    tag_time: int | None  # committer time of the tag's commit

    @property
    def dirty(self) -> bool:
        """True when the work tree differs from HEAD (untracked files count)."""
        return bool(self.changes)


def _git(runner: Runner, cwd: Path, *args: str) -> tuple[bool, str]:
    res = runner.run(["git", *args], cwd=cwd, capture=True, echo_output=False)
    return res.ok, res.stdout.strip()


def read_state(runner: Runner, cwd: Path, tag: str) -> GitState:
    """Probe the repository that holds `cwd`. PreconditionFailed outside a git checkout."""
    ok, head = _git(runner, cwd, "rev-parse", "--verify", "HEAD")
    if not ok:
        raise PreconditionFailed(
            f"{cwd} is not in a git checkout with a commit: a release is cut from a tagged commit"
        )
    ok, tag_commit = _git(
        runner, cwd, "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}"
    )
    _, status = _git(runner, cwd, "status", "--porcelain", "--untracked-files=normal")
    _, head_time = _git(runner, cwd, "show", "-s", "--format=%ct", "HEAD")
    tag_time: int | None = None
    if ok:
        _, text = _git(runner, cwd, "show", "-s", "--format=%ct", tag_commit)
        tag_time = int(text) if text.isdigit() else None
    return GitState(
        head=head,
        tag_commit=tag_commit if ok else None,
        changes=tuple(line for line in status.splitlines() if line.strip()),
        head_time=int(head_time) if head_time.isdigit() else 0,
        tag_time=tag_time,
    )


def problems(state: GitState, tag: str | None, allow_dirty: bool) -> tuple[list[str], list[str]]:
    """(failures, warnings), one line each. A release builds exactly the tagged commit
    from a clean tree (`tag` None: a main build, HEAD itself); `allow_dirty` (local
    trials) turns both into warnings."""
    failures: list[str] = []
    warnings: list[str] = []
    short = state.head[:12]
    if tag is None:
        pass
    elif state.tag_commit is None:
        line = f"tag {tag} does not exist: create it on the release commit (git tag {tag})"
        (warnings if allow_dirty else failures).append(
            line + (" -- building HEAD anyway (--allow-dirty)" if allow_dirty else "")
        )
    elif state.tag_commit != state.head:
        line = (
            f"tag {tag} points at {state.tag_commit[:12]}, not HEAD {short}: "
            f"check out the tag (git checkout {tag}) or move it (git tag -f {tag})"
        )
        (warnings if allow_dirty else failures).append(
            line + (" -- building HEAD anyway (--allow-dirty)" if allow_dirty else "")
        )
    if state.dirty:
        first = state.changes[0].strip()
        more = f" and {len(state.changes) - 1} more" if len(state.changes) > 1 else ""
        line = f"the work tree has uncommitted changes ({first}{more})"
        if allow_dirty:
            warnings.append(line + ": building them anyway (--allow-dirty)")
        else:
            failures.append(line + ": commit or stash them, or pass --allow-dirty for a trial")
    return failures, warnings


def source_date_epoch(state: GitState, env_value: str | None) -> tuple[int, str]:
    """(timestamp for every archive entry, where it came from): SOURCE_DATE_EPOCH when
    set, else the commit time of the tag (which is HEAD), else HEAD's (a trial)."""
    if env_value is not None and env_value.strip():
        text = env_value.strip()
        if not text.isdigit():
            raise PreconditionFailed(
                f"SOURCE_DATE_EPOCH={text!r} is not a whole number of seconds: unset it or fix it"
            )
        return int(text), "SOURCE_DATE_EPOCH"
    if state.tag_time is not None and state.tag_commit == state.head:
        return state.tag_time, "the tag's commit time"
    return state.head_time, "HEAD's commit time"
