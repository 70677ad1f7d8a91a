"""Two approvals by two authenticated people before a version reaches production.

An approval is a statement over (environment, version, image digest, deployment id,
time), signed with the approver's SSH key (`ssh-keygen -Y sign -n <namespace>`) and
verified against the allowed-signers file committed in the repository
(`deploy/approvers`): the approver is the principal that file names for the key, never
a name the approver types, an environment variable or git's user.email. The history
store only carries the statements and signatures: writing to it forges nothing.

`invoke deploy.approve --version V` opens (or joins) the approval request of V's
current image, a deployment id the signatures name; the rollout that uses the request
records it, and once that rollout has ended the request is spent, so an approval counts
for one deployment only. An approval of another version, digest or deployment, older
than `approval_max_age` or dated in the future, does not count; one principal counts
once however many keys or approvals they have.

In GitHub Actions the run's environment reviews count instead: distinct logins that
approved one of `approval_environments` on this very run (two environments in
sequence: `production-approval`, then `production`), not older than the max age, on a
run whose title names the version. The two sources are never added together: either
the signed approvals or the run's reviews must reach the count alone.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ci.history import current_context, open_store
from ci.history.context import GitState
from ci.history.records import Deployment, utc_now
from ci.settings import Settings
from deploy.errors import DeployError
from deploy.rollout.analysis import CONTROLLER_LOST
from deploy.rollout.signers import Verified

KIND = "approval"
REQUEST_KIND = "approval-request"
HEADER = "trading-pipeline production approval v1"
SKEW = timedelta(minutes=5)  # clocks of two machines disagree by this much at most


class NotApproved(DeployError):
    """Too few approvals by distinct authenticated people: nothing was changed."""

    exit_code = 28


@dataclass(frozen=True)
class Statement:
    """What an approver signs."""

    environment: str
    version: str
    digest: str
    deployment: str
    at: datetime

    def text(self) -> str:
        """The exact bytes signed (one `field: value` a line)."""
        return (
            f"{HEADER}\nenvironment: {self.environment}\nversion: {self.version}\n"
            f"digest: {self.digest}\ndeployment: {self.deployment}\n"
            f"approved-at: {self.at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}\n"
        )

    @classmethod
    def parse(cls, text: str) -> Statement | None:
        """The statement `text` holds, or None when it is not exactly one."""
        lines = text.split("\n")
        if lines[0] != HEADER or lines[-1] != "":
            return None
        fields = dict(line.split(": ", 1) for line in lines[1:-1] if ": " in line)
        names = ("environment", "version", "digest", "deployment", "approved-at")
        if len(lines) != len(names) + 2 or set(fields) != set(names):
            return None
        try:
            at = datetime.strptime(fields["approved-at"], "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            return None
        stmt = cls(
            fields["environment"],
            fields["version"],
            fields["digest"],
            fields["deployment"],
            at.replace(tzinfo=UTC),
        )
        return stmt if stmt.text() == text else None


@dataclass(frozen=True)
class Request:
    """An approval request: the deployment id approvals of one image name."""

    id: str
    environment: str
    version: str
    digest: str


@dataclass(frozen=True)
class Approval:
    """One counted approval."""

    approver: str
    at: datetime
    via: str  # "signed" or "github"


@dataclass(frozen=True)
class Rejected:
    """An approval that does not count, and why."""

    who: str
    why: str


# ---- the store ---------------------------------------------------------------------
def spent(deployments: Iterable[Deployment]) -> set[str]:
    """Requests used by a rollout that has ended (a refused run spends nothing; one
    killed mid-way is still in progress until recovery closes it, and a rollout that
    recovery rolled back because its controller was killed (trigger controller-lost)
    passed no verdict on the version: rerunning it reuses the same approvals)."""
    return {
        str(d.details["request"])
        for d in deployments
        if d.details.get("request")
        and d.outcome != "in_progress"
        and not d.details.get("refused")
        and d.details.get("trigger") != CONTROLLER_LOST
    }


def find_request(settings: Settings, environment: str, version: str, digest: str) -> Request | None:
    """The newest unspent request for this image, or None."""
    with open_store(settings) as store:
        used = spent(store.deployments(environment))
        runs = store.runs(REQUEST_KIND)
    for stored in reversed(runs):
        meta = stored.run.meta
        if (meta.get("environment"), meta.get("version"), meta.get("digest")) != (
            environment,
            version,
            digest,
        ):
            continue
        if str(meta.get("request")) not in used:
            return Request(str(meta["request"]), environment, version, digest)
    return None


def _record(settings: Settings, kind: str, meta: Mapping[str, Any], git: GitState | None) -> None:
    at = utc_now()
    run = current_context(settings, kind, meta=meta, now=at, git=git).finished("recorded", at=at)
    with open_store(settings) as store:
        store.record(run)


def open_request(
    settings: Settings, environment: str, version: str, digest: str, git: GitState | None = None
) -> Request:
    """The unspent request for this image, opened when there is none."""
    found = find_request(settings, environment, version, digest)
    if found is not None:
        return found
    req = Request(uuid.uuid4().hex[:12], environment, version, digest)
    meta = {"environment": environment, "version": version, "digest": digest, "request": req.id}
    _record(settings, REQUEST_KIND, meta, git)
    return req


def record(
    settings: Settings, statement: Statement, signature: str, git: GitState | None = None
) -> None:
    """Keep a signed approval in the history store."""
    meta = {
        "environment": statement.environment,
        "version": statement.version,
        "request": statement.deployment,
        "statement": statement.text(),
        "signature": signature,
    }
    _record(settings, KIND, meta, git)


def stored(settings: Settings, environment: str, version: str) -> list[tuple[str, str]]:
    """(statement, signature) of every approval filed for `version` (unchecked)."""
    with open_store(settings) as store:
        runs = store.runs(KIND)
    return [
        (str(r.run.meta.get("statement", "")), str(r.run.meta.get("signature", "")))
        for r in runs
        if r.run.meta.get("environment") == environment and r.run.meta.get("version") == version
    ]


# ---- what counts -------------------------------------------------------------------
def _age_problem(at: datetime, now: datetime, max_age: float) -> str | None:
    if at > now + SKEW:
        return f"dated {at:%Y-%m-%d %H:%M} UTC, in the future"
    if now - at > timedelta(seconds=max_age):
        return f"older than {max_age:g}s ({at:%Y-%m-%d %H:%M} UTC)"
    return None


def check_signed(
    items: Iterable[tuple[str, str]],
    want: Request,
    verify: Callable[[str, str], Verified | str],
    now: datetime,
    max_age: float,
) -> tuple[list[Approval], list[Rejected]]:
    """The signed approvals of `want` that count, and the others with why."""
    good: list[Approval] = []
    bad: list[Rejected] = []
    for text, signature in items:
        stmt = Statement.parse(text)
        if stmt is None:
            bad.append(Rejected("?", "not a signed approval statement"))
            continue
        who = verify(text, signature)
        if not isinstance(who, Verified):
            bad.append(Rejected("?", who))
            continue
        wrong = [
            f"{name} {got}"
            for name, got, expected in (
                ("environment", stmt.environment, want.environment),
                ("version", stmt.version, want.version),
                ("digest", stmt.digest, want.digest),
                ("deployment", stmt.deployment, want.id),
            )
            if got != expected
        ]
        wrong = [w[:26] + "..." if w.startswith("digest") else w for w in wrong]
        problem = f"approves {', '.join(wrong)}" if wrong else _age_problem(stmt.at, now, max_age)
        if problem:
            bad.append(Rejected(who.principal, problem))
        else:
            good.append(Approval(who.principal, stmt.at, "signed"))
    return good, bad


def _when(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def check_github(
    reviews: Iterable[Mapping[str, Any]],
    run: Mapping[str, Any],
    version: str,
    environments: Iterable[str],
    now: datetime,
    max_age: float,
) -> tuple[list[Approval], list[Rejected]]:
    """The run's environment reviews that count, and the others with why. GitHub's
    review history carries no review time (environments, state, user, comment): a
    review is as old as the run attempt it was given in, so the run's start
    (`run_started_at`, the latest attempt) must be within the max age."""
    name = f"run {run.get('id')}"
    title = str(run.get("display_title") or run.get("name") or "")
    if not re.search(rf"(?<![\w.])v?{re.escape(version)}(?![\w.])", title):
        return [], [Rejected(name, f"its title {title!r} does not name {version}")]
    started = _when(str(run.get("run_started_at") or run.get("created_at") or ""))
    if started is None:
        return [], [Rejected(name, "GitHub gave no start time")]
    stale = _age_problem(started, now, max_age)
    wanted = set(environments)
    good: list[Approval] = []
    bad: list[Rejected] = []
    for item in reviews:
        login = str((item.get("user") or {}).get("login") or "")
        envs = {e.get("name") for e in item.get("environments") or [] if isinstance(e, dict)}
        if item.get("state") != "approved" or not login or not envs & wanted:
            continue
        if stale:
            bad.append(Rejected(login, f"given in {name}, started {stale.split(' (')[0]}"))
        else:
            good.append(Approval(login, started, "github"))
    return good, bad


def distinct(approvals: Iterable[Approval]) -> list[Approval]:
    """One approval per approver (the earliest), case-insensitive."""
    seen: dict[str, Approval] = {}
    for a in sorted(approvals, key=lambda a: a.at):
        seen.setdefault(a.approver.strip().casefold(), a)
    return list(seen.values())


def decide(
    needed: int,
    version: str,
    signed: tuple[list[Approval], list[Rejected]],
    github: tuple[list[Approval], list[Rejected]] | None,
    request: Request | None,
) -> list[Approval]:
    """The approvals that count, from one source alone; NotApproved with one line that
    names what is missing otherwise."""
    mine = distinct(signed[0])
    theirs = distinct(github[0]) if github is not None else []
    for found in (mine, theirs):
        if needed and len(found) >= needed:
            return found
    if not needed:
        return []
    names = ", ".join(a.approver for a in mine) or "nobody"
    parts = [f"signed by {names}" + (f" for deployment {request.id}" if request else "")]
    if github is not None:
        parts.append(f"reviewed in this run by {', '.join(a.approver for a in theirs) or 'nobody'}")
    rejected = [*signed[1], *(github[1] if github is not None else [])]
    if rejected:
        parts.append("not counted: " + "; ".join(f"{r.who} ({r.why})" for r in rejected))
    best = max(len(mine), len(theirs))
    mixed = " (signed approvals and GitHub reviews are never added)" if github is not None else ""
    raise NotApproved(
        f"{version} has {best} of {needed} approvals by distinct people{mixed}: "
        f"{'; '.join(parts)}: another approver runs `invoke deploy.approve --version "
        f"{version}` with their own key"
    )
