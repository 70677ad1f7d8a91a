"""Approvals, their pure logic (what counts, what does not and why; the allowed-signers
file; requests spent by their rollout), the GitHub records (run reviews, deployment,
statuses, issue) against the local fake API, and the live view's lines. The real
ssh-keygen signs and verifies in tests/e2e/test_approvals.py."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fakes.github_api import FakeGitHub
from fakes.github_deployments import add_ref, add_run, approve_run, deployments, issues

from ci.errors import PipelineError
from ci.history.context import GitState
from ci.history.records import Deployment
from ci.settings import load
from deploy.errors import PreconditionFailed
from deploy.record import DeploymentLog
from deploy.rollout import approvals, config, github, signers
from deploy.rollout.live import Status, View, line
from deploy.rollout.metrics import Sample

ROOT = Path(__file__).resolve().parents[2]


def settings(tmp_path: Path, **env: str):
    return load(ROOT, {"CIPIPE_HISTORY__PATH": str(tmp_path / "h.sqlite3"), **env})


GIT = GitState(commit="c" * 40, branch="main", dirty=False)


NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "d" * 64
REQ = approvals.Request("r1", "production", "1.0.0", DIGEST)


def _stmt(**changes: object) -> approvals.Statement:
    base = approvals.Statement("production", "1.0.0", DIGEST, "r1", NOW - timedelta(hours=1))
    return replace(base, **changes)


def _verify(text: str, signature: str) -> approvals.Verified | str:
    """Stands in for ssh-keygen here (tests/e2e/test_approvals.py runs the real one):
    the "signature" names the principal its key belongs to, or is bad."""
    return approvals.Verified(signature, "SHA256:x") if signature != "bad" else "bad signature"


def test_the_statement_is_exact_and_tamper_evident() -> None:
    text = _stmt().text()
    assert approvals.Statement.parse(text) == _stmt()
    assert "digest: " + DIGEST in text and "deployment: r1" in text
    assert approvals.Statement.parse(text.replace("1.0.0", "1.0.1")) is not None  # re-signed
    for bad in (text + "extra: 1\n", text.replace("version", "versions"), " " + text, ""):
        assert approvals.Statement.parse(bad) is None


@pytest.mark.parametrize(
    ("stmt", "why"),
    [
        (_stmt(version="1.0.1"), "approves version 1.0.1"),
        (_stmt(digest="sha256:" + "e" * 64), "approves digest sha256:eeee"),
        (_stmt(deployment="r0"), "approves deployment r0"),
        (_stmt(environment="staging"), "approves environment staging"),
        (_stmt(at=NOW - timedelta(days=2)), "older than 86400s"),
        (_stmt(at=NOW + timedelta(hours=1)), "in the future"),
    ],
)
def test_an_approval_of_anything_else_does_not_count(stmt, why: str) -> None:
    good, bad = approvals.check_signed([(stmt.text(), "alice")], REQ, _verify, NOW, 86400)
    assert good == [] and len(bad) == 1
    assert bad[0].who == "alice" and why in bad[0].why


def test_the_approver_is_the_key_owner_and_counts_once() -> None:
    items = [(_stmt().text(), "alice"), (_stmt(at=NOW).text(), "Alice"), (_stmt().text(), "bad")]
    good, bad = approvals.check_signed(items, REQ, _verify, NOW, 86400)
    assert [a.approver for a in approvals.distinct(good)] == ["alice"]
    assert [r.why for r in bad] == ["bad signature"]
    with pytest.raises(approvals.NotApproved) as err:
        approvals.decide(2, "1.0.0", (good, bad), None, REQ)
    line = str(err.value)
    assert "1 of 2 approvals" in line and "signed by alice for deployment r1" in line
    assert "? (bad signature)" in line and "\n" not in line
    good2, _ = approvals.check_signed([(_stmt().text(), "bob")], REQ, _verify, NOW, 86400)
    got = approvals.decide(2, "1.0.0", (good + good2, bad), None, REQ)
    assert sorted(a.approver for a in got) == ["alice", "bob"]


RUN = {
    "id": 77,
    "display_title": "production rollout of 1.0.0",
    "created_at": "2026-12-07T11:00:00Z",
    "run_started_at": "2026-12-07T11:00:00Z",
}


def _review(login: str, env: str, state: str = "approved") -> dict:
    # GitHub's review history: environments, state, user, comment; no review time
    return {"state": state, "user": {"login": login}, "environments": [{"name": env}]}


ENVS = ("production-approval", "production")


def test_github_reviews_count_only_for_this_run_version_and_age() -> None:
    reviews = [
        _review("dana", "production-approval"),
        _review("dana", "production"),  # the same login on both environments
        _review("erin", "staging"),  # another environment: ignored
        _review("frank", "production", state="rejected"),
    ]
    good, bad = approvals.check_github(reviews, RUN, "1.0.0", ENVS, NOW, 86400)
    assert [a.approver for a in approvals.distinct(good)] == ["dana"] and bad == []
    other = {**RUN, "display_title": "production rollout of 1.0.01"}
    good, bad = approvals.check_github(reviews, other, "1.0.0", ENVS, NOW, 86400)
    assert good == [] and "does not name 1.0.0" in bad[0].why
    # a run (or its latest attempt) started long ago: its reviews are that old
    old = {**RUN, "run_started_at": "2025-12-07T11:00:00Z"}
    good, bad = approvals.check_github(reviews, old, "1.0.0", ENVS, NOW, 86400)
    assert good == [] and {r.who for r in bad} == {"dana"}
    assert "given in run 77, started older than 86400s" in bad[0].why
    ok = [_review("dana", "production-approval"), _review("ivan", "production")]
    tagged = {**RUN, "display_title": "production rollout of v1.0.0"}
    good, _ = approvals.check_github(ok, tagged, "1.0.0", ENVS, NOW, 86400)
    assert len(approvals.decide(2, "1.0.0", ([], []), (good, []), None)) == 2


def test_signed_and_github_approvals_are_never_added() -> None:
    signed, _ = approvals.check_signed([(_stmt().text(), "alice")], REQ, _verify, NOW, 86400)
    gh, _ = approvals.check_github([_review("bob", "production")], RUN, "1.0.0", ENVS, NOW, 86400)
    with pytest.raises(
        approvals.NotApproved, match="1 of 2 approvals by distinct people \\(signed"
    ):
        approvals.decide(2, "1.0.0", (signed, []), (gh, []), REQ)
    assert approvals.decide(0, "1.0.0", ([], []), None, None) == []


def test_a_request_is_spent_once_its_rollout_has_ended() -> None:
    def dep(outcome: str, **details: object) -> Deployment:
        return Deployment(
            "d", "production", "1.0.0", DIGEST, NOW, None, outcome, "manual", details=details
        )

    assert (
        approvals.spent([dep("in_progress", request="a")]) == set()
    )  # killed: recovery may finish it
    assert approvals.spent([dep("failed", request="b", refused="no approvals")]) == set()
    assert approvals.spent([dep("succeeded", request="c"), dep("rolled_back", request="d")]) == {
        "c",
        "d",
    }


def test_requests_are_opened_once_per_image_and_spent_by_their_rollout(tmp_path: Path) -> None:
    s = settings(tmp_path)
    req = approvals.open_request(s, "production", "1.0.0", DIGEST, GIT)
    assert approvals.open_request(s, "production", "1.0.0", DIGEST, GIT) == req
    other = approvals.open_request(s, "production", "1.0.0", "sha256:" + "e" * 64, GIT)
    assert other.id != req.id
    log = DeploymentLog(s, "production", print)
    log.finish(log.start("1.0.0", DIGEST, None, {"request": req.id}), "succeeded", {})
    assert approvals.find_request(s, "production", "1.0.0", DIGEST) is None
    assert approvals.open_request(s, "production", "1.0.0", DIGEST, GIT).id != req.id


ALICE = "AAAAC3NzaC1lZDI1NTE5AAAAIGYTZqe1zipoqTH4ENGIaLhBluenUgxh0pWNnQQb8ItF"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (f"*@corp.com ssh-ed25519 {ALICE}", "not one person"),
        (f"alice,bob ssh-ed25519 {ALICE}", "not one person"),
        (f"ca cert-authority ssh-ed25519 {ALICE}", "cert-authority"),
        (f"alice ssh-ed25519 {ALICE}\nbob ssh-ed25519 {ALICE}", "also 'alice'"),
        ("alice ssh-ed25519", "expected `principal"),
        ("alice ssh-ed25519 not*base64", "not base64"),
    ],
)
def test_the_approvers_file_keeps_one_key_one_person(text: str, why: str) -> None:
    with pytest.raises(PreconditionFailed, match=re.escape(why)):
        signers.parse_allowed(text, "deploy/approvers")


def test_the_approvers_file_format() -> None:
    text = (
        "# comment\n\n"
        f'alice@example.com namespaces="production-approval,git" ssh-ed25519 {ALICE} laptop\n'
        f"alice@example.com ssh-ed25519 {ALICE[:-4]}AAAA yubikey\n"
    )
    got = signers.parse_allowed(text, "x")
    assert [(s.principal, s.line) for s in got] == [
        ("alice@example.com", 3),
        ("alice@example.com", 4),
    ]
    committed = signers.parse_allowed((ROOT / "deploy" / "approvers").read_text(), "approvers")
    assert committed == []  # the repository ships no one's key: each team adds its own


def test_github_environment_reviews_are_read_back(tmp_path: Path) -> None:
    with FakeGitHub() as api:
        approve_run(api, "acme/trading", "77", "dana", "production")
        add_run(api, "acme/trading", "77", "production rollout of 1.0.0")
        cfg = config.load(
            settings(
                tmp_path,
                GITHUB_TOKEN=api.token,
                GITHUB_REPOSITORY="acme/trading",
                CIPIPE_PRODUCTION__GITHUB_API=api.url,
            )
        )
        rec = github.records(cfg, print)
        assert rec is not None
        [review] = rec.run_approvals("77")
        assert review["user"]["login"] == "dana"
        assert rec.run("77")["display_title"] == "production rollout of 1.0.0"
        with pytest.raises(PipelineError, match="404"):
            rec.run("78")
        add_ref(api, "acme/trading", "v1.0.0")
        dep = rec.create_deployment("v1.0.0", "1.0.0", {"kind": "rollout"})
        rec.status(dep, "in_progress", "started")
        rec.status(dep, "failure", "rolled back: error-rate")
        url = rec.open_issue("Production rollback of 1.0.0", "report body")
        assert [s["state"] for s in deployments(api)[dep]["_statuses"]] == [
            "in_progress",
            "failure",
        ]
        [issue] = issues(api).values()
        assert url == issue["html_url"] and [x["name"] for x in issue["labels"]] == [
            "incident",
            "production",
        ]
        for req in api.log:
            assert api.token not in req.path
        rec.close()


def test_no_token_means_history_only(tmp_path: Path) -> None:
    assert github.records(config.load(settings(tmp_path)), print) is None


def test_live_view_lines() -> None:
    th = config.load(load(ROOT, {})).thresholds
    st = Status(
        "step 2/3 (50%)",
        {"blue": 50, "green": 50},
        "green",
        {"green": Sample(0, 120, 3, 1.0, 2.5, 9.0), "blue": None},
        {"green": "1.1", "blue": "1.0"},
        42.0,
    )
    text = line(st, th)
    assert text.startswith("[step 2/3 (50%)] | blue 50% green 50%")
    assert "green*: 120 req err 2.5% p50/p95/p99 1.0/2.5/9.0 ms" in text
    assert "blue: 0 req err -" in text and "42s left" in text
    said: list[str] = []
    view = View(th, said.append, rich=False, every=60)
    view.update(st)
    view.update(st)  # throttled
    view.update(Status(**{**st.__dict__, "note": "HOLD: inconclusive", "left": -3}))
    assert len(said) == 2 and "holding 3s" in said[1]
    table = View(th, said.append, rich=True)._table(st)
    assert table.row_count == 3  # two colours and the limits


def test_the_production_workflow_asks_two_environments_in_sequence() -> None:
    from ci import workflows

    doc = workflows.load(ROOT / ".github" / "workflows" / "deploy-production.yml").doc
    cfg = config.load(load(ROOT, {}))
    jobs = doc["jobs"]
    assert [job["environment"] for job in jobs.values()] == list(cfg.approval_environments)
    assert jobs["production"]["needs"] == "approval"
    assert "${{ inputs.version }}" in doc["run-name"]  # check_github matches the title
    for job in jobs.values():
        assert job["permissions"]["actions"] == "read"  # the run's reviews, read back


def test_a_rollout_lost_with_its_controller_does_not_spend_its_approvals() -> None:
    """A rollout killed mid-way is rolled back by the next run's recovery (its record's
    trigger controller-lost): no verdict on the version, so the rerun keeps the approvals
    it was given (the SIGKILL-then-rerun production test was refused for want of them)."""
    from deploy.rollout.analysis import CONTROLLER_LOST

    def dep(trigger: str, request: str) -> Deployment:
        details = {"request": request, "trigger": trigger}
        return Deployment(
            "d", "production", "1.0.0", DIGEST, NOW, NOW, "rolled_back", "rollout", details=details
        )

    assert approvals.spent([dep(CONTROLLER_LOST, "r1"), dep("error-rate", "r2")]) == {"r2"}
