"""What coverage asks git: the base a change is compared with, the commits whose
figures may serve as its baseline, and the lines changed since it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ci.errors import ConfigError, ToolMissing
from ci.runner import CommandResult, Runner


@dataclass(frozen=True)
class BaseRef:
    """The ref a change is compared with, and where that choice came from."""

    ref: str
    source: str  # "--base", "GITHUB_BASE_REF", "coverage.base"


def choose_base(option: str | None, env: Mapping[str, str], configured: str) -> BaseRef | None:
    """`--base REF`, else the pull request's target branch (GITHUB_BASE_REF), else
    `[tool.pipeline.coverage] base`; None when none is set (not a PR, nothing asked)."""
    if option and option.strip():
        return BaseRef(option.strip(), "--base")
    pr_base = env.get("GITHUB_BASE_REF", "").strip()
    if pr_base:
        return BaseRef(pr_base, "GITHUB_BASE_REF")
    if configured:
        return BaseRef(configured, "coverage.base")
    return None


class Git:
    """git in the workspace, quietly (the command is logged, its output is data)."""

    def __init__(self, runner: Runner, cwd: Path) -> None:
        self.runner = runner
        self.cwd = cwd

    def run(self, *args: str) -> CommandResult:
        """`git <args>`, captured; ToolMissing when git is not installed."""
        return self.runner.run(
            ["git", *args], cwd=self.cwd, capture=True, echo_output=False, log_stdout=False
        )

    def head(self) -> str | None:
        """HEAD's full SHA; None outside a git checkout (or without git, or before the
        first commit)."""
        try:
            res = self.run("rev-parse", "--verify", "--quiet", "HEAD")
        except ToolMissing:
            return None
        return res.stdout.strip() if res.ok and res.stdout.strip() else None

    def merge_base(self, base: BaseRef) -> str:
        """The commit where HEAD left `base`: the commit whose figures a change is
        compared with. ConfigError saying what to fetch when it cannot be found."""
        candidates = [base.ref, f"origin/{base.ref}"] if "/" not in base.ref else [base.ref]
        if base.source == "GITHUB_BASE_REF":
            candidates.reverse()  # on a runner the PR's target exists as origin/<branch>
        for ref in candidates:
            res = self.run("merge-base", ref, "HEAD")
            if res.ok and res.stdout.strip():
                return res.stdout.strip()
        raise ConfigError(
            f"coverage base {base.ref!r} (from {base.source}) has no common history with HEAD: "
            f"fetch it (`git fetch origin {base.ref}`; on GitHub Actions checkout with "
            "fetch-depth: 0) or pass another with `nox -s coverage -- --base REF`"
        )

    def history(self, start: str, depth: int) -> list[str]:
        """`start` and its first-parent ancestors, nearest first, at most `depth`."""
        res = self.run("rev-list", "--first-parent", f"--max-count={depth}", start)
        return res.stdout.split() if res.ok else []

    def diff(self, base: str) -> str:
        """The changes from commit `base` to the working tree, without context lines,
        paths relative to the workspace (new files that are not yet added are left out)."""
        res = self.run(
            "-c",
            "core.quotePath=false",
            "diff",
            "--unified=0",
            "--no-color",
            "--no-ext-diff",
            "--relative",
            base,
            "--",
            ".",
        )
        if not res.ok:
            line = (res.stderr.strip().splitlines() or ["git diff failed"])[0]
            raise ConfigError(f"cannot diff against the coverage base {base[:12]}: {line}")
        return res.stdout
