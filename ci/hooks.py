"""Git hooks that only check: they never format, fix or stage anything, so what is
committed (or pushed) is exactly what was checked."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from ci.errors import ConfigError, PipelineError
from ci.result import atomic_write

MARKER = "# installed by `invoke hooks.install` (rust trading pipeline)"
# What each hook runs: fast checks before a commit, the tests with services before a push.
STAGES = {"pre-commit": "lint,unit", "pre-push": "lint,unit,integration"}


def hook_text(hook: str, root: Path, python: str = sys.executable) -> str:
    """The hook script: `invoke ci` on the check-only stages, fail-fast."""
    stages = STAGES[hook]
    cmd = shlex.join([python, "-m", "invoke", "-r", str(root), "ci", "--stages", stages])
    return (
        "#!/bin/sh\n"
        f"{MARKER}\n"
        f"# Checks only ({stages}); never rewrites the working tree. It checks the working\n"
        "# tree as it is (stage and save what you commit). Skip once: git commit --no-verify\n"
        f"exec {cmd} --fail-fast\n"
    )


def hooks_dir(root: Path) -> Path:
    """The repository's hooks folder (honours core.hooksPath and worktrees)."""
    proc = subprocess.run(
        ["git", "rev-parse", "--git-path", "hooks"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise PipelineError(f"{root} is not a git checkout: cannot install hooks")
    path = Path(proc.stdout.strip())
    return path if path.is_absolute() else root / path


def install(root: Path, hook: str, *, force: bool = False, into: Path | None = None) -> Path:
    """Write the hook (into the repository's hooks folder, or `into`); refuse to replace a
    hook we did not write unless `force` (then the old one is kept as `<hook>.backup`)."""
    if hook not in STAGES:
        raise ConfigError(f"unknown hook {hook!r}; available: {', '.join(STAGES)}")
    path = (into or hooks_dir(root)) / hook
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        current = path.read_text(encoding="utf-8", errors="replace")
        if MARKER not in current:
            if not force:
                raise PipelineError(
                    f"{path} exists and was not written by this pipeline; "
                    "re-run with --force to replace it (the old hook is kept as .backup)"
                )
            atomic_write(path.with_name(hook + ".backup"), current)
    atomic_write(path, hook_text(hook, root))
    path.chmod(0o755)
    return path
