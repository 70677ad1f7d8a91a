"""Two approvals by two different people before a version reaches production.

Locally, `invoke deploy.approve --version V` records one approval in the history store
(kind "approval": environment, version, approver, when, how). The approver is the
identity of whoever runs it: `git config user.email` (else the login name) plus the
machine, so one person approving twice counts once. In GitHub Actions, the protected
environment's required reviewers approve the job before it starts; the flow reads those
approvals back from the API (`/actions/runs/{id}/approvals`) and counts them the same
way. This is an attestation trail, not authentication: the protection rule (or access
to the history store) is what stops an impostor.
"""

from __future__ import annotations

import getpass
import socket
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ci.history import current_context, open_store
from ci.history.records import utc_now
from ci.settings import Settings
from deploy.errors import DeployError

KIND = "approval"


class NotApproved(DeployError):
    """Too few distinct approvals: nothing was changed."""

    exit_code = 28


@dataclass(frozen=True)
class Approval:
    """One approval: who, when, through what."""

    approver: str
    at: datetime
    via: str  # "local" or "github"


def identity(env: Mapping[str, str], root: object = None) -> str:
    """Who is approving: $DEPLOY_APPROVER (CI bots), else git's user.email, else the
    login name."""
    given = env.get("DEPLOY_APPROVER", "").strip()
    if given:
        return given
    try:
        out = subprocess.run(
            ["git", "config", "user.email"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            cwd=str(root) if root else None,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    return out or getpass.getuser()


def record(
    settings: Settings, environment: str, version: str, approver: str, git: Any = None
) -> Approval:
    """Record `approver`'s approval of `version` (`git`: the checkout's state, read when
    None)."""
    at = utc_now()
    meta = {
        "environment": environment,
        "version": version,
        "approver": approver,
        "host": socket.gethostname(),
        "via": "local",
    }
    run = current_context(settings, KIND, meta=meta, now=at, git=git).finished("approved", at=at)
    with open_store(settings) as store:
        store.record(run)
    return Approval(approver, at, "local")


def recorded(settings: Settings, environment: str, version: str, max_age: float) -> list[Approval]:
    """The recorded approvals of `version` for `environment`, newer than `max_age`."""
    since = utc_now() - timedelta(seconds=max_age)
    with open_store(settings) as store:
        runs = store.runs(KIND, since=since)
    out = []
    for stored in runs:
        meta = stored.run.meta
        if meta.get("environment") == environment and meta.get("version") == version:
            out.append(Approval(str(meta.get("approver", "")), stored.run.started_at, "local"))
    return out


def from_github(pairs: list[tuple[str, str]]) -> list[Approval]:
    """Approvals read from the Actions run."""
    out = []
    for login, when in pairs:
        try:
            at = datetime.fromisoformat(when.replace("Z", "+00:00"))
        except ValueError:
            at = datetime.now(UTC)
        out.append(Approval(login, at, "github"))
    return out


def distinct(approvals: list[Approval]) -> list[Approval]:
    """One approval per approver (the earliest), case-insensitive."""
    seen: dict[str, Approval] = {}
    for a in sorted(approvals, key=lambda a: a.at):
        key = a.approver.strip().lower()
        if key and key not in seen:
            seen[key] = a
    return list(seen.values())


def require(
    approvals: list[Approval], needed: int, version: str, say: Callable[[str], None]
) -> list[Approval]:
    """The distinct approvals, or NotApproved with one line saying what is missing."""
    unique = distinct(approvals)
    if len(unique) < needed:
        names = ", ".join(a.approver for a in unique) or "nobody"
        dup = len(approvals) - len(unique)
        extra = f" ({dup} duplicate approval(s) by the same person not counted)" if dup else ""
        raise NotApproved(
            f"{version} has {len(unique)} of {needed} distinct approvals (by {names}){extra}: "
            f"another person runs `invoke deploy.approve --version {version}` "
            "(in GitHub Actions: the environment's required reviewers)"
        )
    for a in unique:
        say(f"approved by {a.approver} at {a.at:%Y-%m-%d %H:%M:%S} UTC ({a.via})")
    return unique
