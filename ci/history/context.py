"""Who, where and what a run is: commit, branch, CI run id, machine and time, from git
and the environment in `Settings.env` (never `os.environ` directly)."""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ci.errors import ToolMissing
from ci.history.records import Machine, RunInfo, utc_now
from ci.runner import Runner
from ci.settings import Settings


@dataclass(frozen=True)
class GitState:
    """What git says about the checkout: HEAD's full SHA, the branch ("" when detached)
    and whether tracked files have uncommitted changes."""

    commit: str
    branch: str
    dirty: bool


def parse_git_status(text: str) -> GitState:
    """`git status --porcelain=v2 --branch --untracked-files=no` output as a GitState."""
    commit = branch = ""
    dirty = False
    for line in text.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.split(" ", 2)[2].strip()
            commit = "" if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line.split(" ", 2)[2].strip()
            branch = "" if head == "(detached)" else head
        elif line and not line.startswith("#"):
            dirty = True
    return GitState(commit, branch, dirty)


def read_git(cwd: Path, env: Mapping[str, str]) -> GitState | None:
    """The checkout's GitState, or None when git is missing or `cwd` is not a checkout."""
    with Runner(echo=False, base_env=env) as runner:
        try:
            res = runner.run(
                ["git", "status", "--porcelain=v2", "--branch", "--untracked-files=no"],
                cwd=cwd,
                capture=True,
            )
        except ToolMissing:
            return None
    return parse_git_status(res.stdout) if res.ok else None


def machine_identity(hostname: str, cpu_model: str, cores: int) -> Machine:
    """A short stable id for this hardware (hostname + CPU model + core count, hashed)
    and a readable label."""
    digest = hashlib.sha256(f"{hostname}\n{cpu_model}\n{cores}".encode()).hexdigest()[:12]
    return Machine(digest, f"{hostname} ({cpu_model}, {cores} cores)")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                    return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def this_machine(configured: str = "") -> Machine:
    """The configured machine class name (ids runs on interchangeable CI runners), else
    this host's identity."""
    if configured.strip():
        name = configured.strip()
        return Machine(name, name)
    return machine_identity(socket.gethostname(), _cpu_model(), os.cpu_count() or 1)


def ci_run_id(env: Mapping[str, str], configured: str = "") -> str:
    """The CI run records belong to: configured, else GITHUB_RUN_ID/GITHUB_RUN_ATTEMPT,
    else a fresh uuid4 (a local run)."""
    if configured.strip():
        return configured.strip()
    run = env.get("GITHUB_RUN_ID", "").strip()
    if run:
        attempt = env.get("GITHUB_RUN_ATTEMPT", "").strip()
        return f"{run}/{attempt}" if attempt else run
    return uuid.uuid4().hex


def ci_branch(env: Mapping[str, str]) -> str | None:
    """The branch GitHub Actions is building: a PR's head branch, or the pushed branch."""
    head = env.get("GITHUB_HEAD_REF", "").strip()
    if head:
        return head
    if env.get("GITHUB_REF_TYPE") == "branch" and env.get("GITHUB_REF_NAME", "").strip():
        return env["GITHUB_REF_NAME"].strip()
    return None


def current_context(
    settings: Settings,
    kind: str,
    *,
    tool_versions: Mapping[str, str] | None = None,
    meta: Mapping[str, Any] | None = None,
    status: str = "running",
    git: GitState | None = None,
    now: datetime | None = None,
) -> RunInfo:
    """A RunInfo for a run of `kind` starting now, on this checkout and machine. Record
    it when done with `store.record(info.finished(status), measurements)`.

    Commit: git HEAD (full SHA), else GITHUB_SHA, else "". Branch: the branch GitHub
    Actions builds, else git's, else "". `git` replaces reading the checkout (tests)."""
    env = settings.env
    cfg = settings.section("history")
    if git is None:
        cwd = settings.workspace if settings.workspace.is_dir() else settings.root
        git = read_git(cwd, env) or GitState(commit="", branch="", dirty=False)
    return RunInfo(
        kind=kind,
        commit=git.commit or env.get("GITHUB_SHA", "").strip(),
        branch=ci_branch(env) or git.branch,
        run_id=ci_run_id(env, cfg.text("run_id")),
        machine=this_machine(cfg.text("machine")),
        started_at=now or utc_now(),
        status=status,
        tool_versions=dict(tool_versions or {}),
        meta=dict(meta or {}),
        dirty=git.dirty,
    )
