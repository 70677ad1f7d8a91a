"""Approvals (two distinct people, recorded in the history store or read from the
Actions run's environment reviews), the GitHub records (deployment, statuses, issue)
against the local fake API, and the live view's lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes.github_api import FakeGitHub
from fakes.github_deployments import add_ref, approve_run, deployments, issues

from ci.history.context import GitState
from ci.settings import load
from deploy.rollout import approvals, config, github
from deploy.rollout.live import Status, View, line
from deploy.rollout.metrics import Sample

ROOT = Path(__file__).resolve().parents[2]


def settings(tmp_path: Path, **env: str):
    return load(ROOT, {"CIPIPE_HISTORY__PATH": str(tmp_path / "h.sqlite3"), **env})


GIT = GitState(commit="c" * 40, branch="main", dirty=False)


def test_two_distinct_people_are_needed(tmp_path: Path) -> None:
    s = settings(tmp_path)
    approvals.record(s, "production", "1.0.0", "alice@example.com", GIT)
    approvals.record(s, "production", "1.0.0", "Alice@Example.com", GIT)  # same person
    approvals.record(s, "production", "2.0.0", "bob@example.com", GIT)  # another version
    approvals.record(s, "staging", "1.0.0", "bob@example.com", GIT)  # another environment
    found = approvals.recorded(s, "production", "1.0.0", 3600)
    assert len(found) == 2
    with pytest.raises(approvals.NotApproved, match=r"1 of 2 distinct approvals \(by alice"):
        approvals.require(found, 2, "1.0.0", print)
    with pytest.raises(approvals.NotApproved, match="1 duplicate"):
        approvals.require(found, 2, "1.0.0", print)
    approvals.record(s, "production", "1.0.0", "bob@example.com", GIT)
    said: list[str] = []
    got = approvals.require(
        approvals.recorded(s, "production", "1.0.0", 3600), 2, "1.0.0", said.append
    )
    assert [a.approver for a in got] == ["alice@example.com", "bob@example.com"]
    assert len(said) == 2 and "approved by alice@example.com" in said[0]


def test_the_approver_is_who_runs_it() -> None:
    assert approvals.identity({"DEPLOY_APPROVER": " carol "}) == "carol"


def test_github_environment_reviews_count_as_approvals(tmp_path: Path) -> None:
    with FakeGitHub() as api:
        approve_run(api, "acme/trading", "77", "dana", "production")
        approve_run(api, "acme/trading", "77", "erin", "staging")  # another environment
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
        found = approvals.from_github(rec.run_approvals("77"))
        assert [a.approver for a in found] == ["dana"]
        with pytest.raises(approvals.NotApproved):
            approvals.require(found, 2, "1.0.0", print)
        approve_run(api, "acme/trading", "77", "frank", "production")
        assert (
            len(
                approvals.require(approvals.from_github(rec.run_approvals("77")), 2, "1.0.0", print)
            )
            == 2
        )
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
