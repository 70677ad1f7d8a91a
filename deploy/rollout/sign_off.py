"""The approval flows around deploy/rollout/approvals.py (what counts) and signers.py
(ssh-keygen): `invoke deploy.approve` signs, `invoke deploy.approvals` shows where a
version stands, and the production run checks before it changes anything."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ci.settings import Settings
from deploy.rollout import approvals, signers
from deploy.rollout.approvals import Approval, Rejected, Request
from deploy.rollout.config import ProductionConfig
from deploy.rollout.github import Records

Found = tuple[list[Approval], list[Rejected]]


def _verifier(cfg: ProductionConfig) -> Callable[[str, str], Any]:
    def verify(text: str, signature: str) -> Any:
        return signers.verify(text, signature, cfg.approvers_file, cfg.approval_namespace)

    return verify


def evaluate(
    settings: Settings,
    cfg: ProductionConfig,
    gh: Records | None,
    version: str,
    digest: str,
    request: Request | None,
) -> tuple[Found, Found | None]:
    """(signed approvals, this Actions run's reviews or None outside Actions), each as
    (counted, not counted with why)."""
    env = settings.env
    now = datetime.now(UTC)
    signed: Found = ([], [])
    items = approvals.stored(settings, cfg.environment, version)
    if items:
        signers.load_allowed(cfg.approvers_file)  # one key = one person, or refuse
        # Without an open request nothing can count; checking anyway names what was
        # approved instead (another digest, a deployment already done).
        want = request or Request("(none open)", cfg.environment, version, digest)
        signed = approvals.check_signed(items, want, _verifier(cfg), now, cfg.approval_max_age)
    run_id = env.get("GITHUB_RUN_ID", "")
    if gh is None or env.get("GITHUB_ACTIONS") != "true" or not run_id:
        return signed, None
    reviews = approvals.check_github(
        gh.run_approvals(run_id),
        gh.run(run_id),
        version,
        cfg.approval_environments,
        now,
        cfg.approval_max_age,
    )
    return signed, reviews


def _how(a: Approval) -> str:
    return "SSH signature" if a.via == "signed" else "GitHub review"


def check(
    settings: Settings,
    cfg: ProductionConfig,
    gh: Records | None,
    version: str,
    digest: str,
    request: Request | None,
    say: Callable[[str], None],
) -> None:
    """Enough distinct authenticated approvers from one source, or NotApproved."""
    if cfg.approvals == 0:
        return
    signed, reviews = evaluate(settings, cfg, gh, version, digest, request)
    for a in approvals.decide(cfg.approvals, version, signed, reviews, request):
        say(f"approved by {a.approver} at {a.at:%Y-%m-%d %H:%M:%S} UTC ({_how(a)})")


def status(
    settings: Settings,
    cfg: ProductionConfig,
    gh: Records | None,
    version: str,
    digest: str,
    say: Callable[[str], None],
) -> str:
    """Every approval of `version`'s image, counted or not and why; the final line says
    whether the rollout may start."""
    request = approvals.find_request(settings, cfg.environment, version, digest)
    say(f"{version}: image {digest}; approval request {request.id if request else 'none open'}")
    signed, reviews = evaluate(settings, cfg, gh, version, digest, request)
    for found in (signed, reviews or ([], [])):
        for a in approvals.distinct(found[0]):
            say(f"  counts: {a.approver} at {a.at:%Y-%m-%d %H:%M:%S} UTC ({_how(a)})")
        for r in found[1]:
            say(f"  does not count: {r.who}: {r.why}")
    try:
        got = approvals.decide(cfg.approvals, version, signed, reviews, request)
    except approvals.NotApproved as err:
        return f"not yet: {err}"
    return f"{version} may go to {cfg.environment}: {len(got)} of {cfg.approvals} approvals"


def approve(settings: Settings, cfg: ProductionConfig, version: str, digest: str, key: Any) -> str:
    """Sign this person's approval of `version`'s image `digest` for its open request;
    the final line."""
    request = approvals.open_request(settings, cfg.environment, version, digest)
    now = datetime.now(UTC)
    stmt = approvals.Statement(cfg.environment, version, digest, request.id, now)
    signature = signers.sign(stmt.text(), key, cfg.approval_namespace)
    who = _verifier(cfg)(stmt.text(), signature)
    if not isinstance(who, signers.Verified):
        raise approvals.NotApproved(
            f"your key {key} does not count: {who}: add its public key to "
            f"{cfg.approvers_file} (one line, `you@example.com ssh-ed25519 AAAA...`) and commit it"
        )
    items = approvals.stored(settings, cfg.environment, version)
    good, _ = approvals.check_signed(items, request, _verifier(cfg), now, cfg.approval_max_age)
    if any(a.approver.casefold() == who.principal.casefold() for a in good):
        raise approvals.NotApproved(
            f"{who.principal} has already approved {version} (deployment {request.id}): the "
            "second approval must come from another person"
        )
    approvals.record(settings, stmt, signature)
    count = len(approvals.distinct(good)) + 1
    return (
        f"approved {version} ({digest}) for {cfg.environment} as {who.principal} "
        f"(key {who.fingerprint}), deployment {request.id}: {count} of {cfg.approvals} approvals"
    )
