"""The dependency graph the security checks audit: the workspace's committed Cargo.lock,
or, for a workspace that commits none (many libraries do not), one resolved now by
`cargo generate-lockfile` in a scratch copy of the workspace. The workspace itself is
never written to, and the result says the audited graph was freshly resolved."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ci.runner import Runner

LOCK = "Cargo.lock"
# Never copied into the scratch workspace: build output and version control are not
# inputs of a resolution and can be large.
_SKIP = ("target", ".git", ".hg", ".svn", "node_modules", ".pipeline")


@dataclass(frozen=True)
class LockFile:
    """The lock file to audit: its text, the manifest folder cargo-deny reads (the
    workspace, or the scratch copy beside a fresh lock), whether it was resolved now,
    and the reason when none could be had (then `text` is empty)."""

    text: str
    manifest_dir: Path
    path: Path | None
    fresh: bool = False
    problem: str = ""

    @property
    def usable(self) -> bool:
        return not self.problem

    def describe(self) -> str:
        """The `lockfile` check's line."""
        if self.problem:
            return self.problem
        if not self.fresh:
            return f"committed {LOCK}: {packages(self.text)} packages"
        return (
            f"no {LOCK} committed: audited a graph freshly resolved now by `cargo "
            f"generate-lockfile` ({packages(self.text)} packages), not the committed one"
        )


def packages(text: str) -> int:
    """How many packages a lock file lists."""
    return sum(line.strip() == "[[package]]" for line in text.splitlines())


def committed(workspace: Path) -> bool:
    """Whether the workspace's lock file is committed: tracked by git, or (outside git,
    where nothing tells) simply present."""
    if not (workspace / LOCK).is_file():
        return False
    try:
        res = subprocess.run(
            ["git", "ls-files", "--error-unmatch", LOCK],
            cwd=workspace,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return True  # no git to ask: the file is all there is
    return res.returncode == 0 or "not a git repository" in res.stderr


def _first_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return next((x for x in lines if x.startswith("error")), lines[0] if lines else "")


def resolve(
    runner: Runner,
    workspace: Path,
    scratch: Path,
    env: Mapping[str, str],
    *,
    offline: bool,
) -> LockFile:
    """The committed lock file, else one resolved in `scratch` (a copy of the workspace).
    `offline`: resolve from cargo's local registry cache only. A resolution that fails
    comes back as a LockFile with `problem` set to one line saying why."""
    lock = workspace / LOCK
    if committed(workspace):
        return LockFile(lock.read_text(encoding="utf-8"), workspace, lock)
    copy = scratch / "workspace"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(workspace, copy, symlinks=True, ignore=shutil.ignore_patterns(*_SKIP))
    # An untracked lock was written by some earlier build here (or by a stage running
    # beside this one): not the committed graph, and of unknown age. Resolve afresh.
    (copy / LOCK).unlink(missing_ok=True)
    runner.say(f"no {LOCK} committed: resolving one in a scratch copy ({copy})")
    args = ["cargo", "generate-lockfile", *(["--offline"] if offline else [])]
    res = runner.run(args, cwd=copy, env=dict(env), capture=True)
    fresh = copy / LOCK
    if not res.ok or not fresh.is_file():
        why = _first_error(res.stderr) or f"cargo generate-lockfile failed (exit {res.returncode})"
        net = "offline" if offline or env.get("CARGO_NET_OFFLINE") == "true" else "online"
        return LockFile(
            "",
            copy,
            None,
            fresh=True,
            problem=(
                f"no {LOCK} committed and none could be resolved ({net}): {why[:300]}; "
                f"commit one, or make the registry reachable"
            ),
        )
    return LockFile(fresh.read_text(encoding="utf-8"), copy, fresh, fresh=True)
