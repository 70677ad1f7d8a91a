"""The deployments part of the fake GitHub API, plus what the production flow reads and
writes around it: environment approvals of an Actions run and incident issues.

State: `deployments(api)` -> {id: deployment, with "_statuses": [status, ...]},
`issues(api)` -> {number: issue}, `approve_run(api, repo, run_id, login, env)` adds an
approval the run's review history then reports.

Refs: a deployment's ref must name a branch, tag or commit the repository has, as on
GitHub (422 "No ref found for: X" otherwise): the default branch `main`, every release's
tag, and what `add_ref(api, repo, name)` adds (a tag pushed without a release, a commit
SHA).

Implemented: POST /repos/{o}/{r}/deployments (201; 422 without ref or for an unknown
ref), GET the same
(filter by environment), POST/GET /repos/{o}/{r}/deployments/{id}/statuses (201; 422 for
an unknown state), GET /repos/{o}/{r}/actions/runs/{id} (404 unless `add_run` made it)
and its /approvals, POST /repos/{o}/{r}/issues (201; 422 without title; body limited
to 65536 characters).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from fakes.github_api import REPO, FakeGitHub, Request, Response, error, invalid

Json = dict[str, Any]
STATES = ("error", "failure", "inactive", "in_progress", "queued", "pending", "success")


def deployments(api: FakeGitHub) -> dict[int, Json]:
    """Every deployment the fake holds."""
    return api.__dict__.setdefault("_deployments", {})


def issues(api: FakeGitHub) -> dict[int, Json]:
    """Every issue opened."""
    return api.__dict__.setdefault("_issues", {})


def _approvals(api: FakeGitHub) -> dict[tuple[str, str], list[Json]]:
    return api.__dict__.setdefault("_run_approvals", {})


def _refs(api: FakeGitHub) -> dict[str, set[str]]:
    return api.__dict__.setdefault("_refs", {})


def add_ref(api: FakeGitHub, repo: str, name: str) -> None:
    """Make `name` (a tag, branch or commit SHA) exist in `repo`."""
    _refs(api).setdefault(repo, set()).add(name)


def _known_ref(api: FakeGitHub, repo: str, ref: str) -> bool:
    name = re.sub(r"^(refs/)?(heads|tags)/", "", ref)
    tags = {str(r.get("tag_name")) for r in api.state.repos.get(repo, {}).values()}
    return name in {"main", *tags, *_refs(api).get(repo, set())}


def _runs(api: FakeGitHub) -> dict[tuple[str, str], Json]:
    return api.__dict__.setdefault("_runs", {})


def add_run(api: FakeGitHub, repo: str, run_id: str, title: str, started_at: str = "") -> None:
    """An Actions run of `repo` whose title (`run-name`) is `title`, started at
    `started_at` (ISO 8601; default now)."""
    at = started_at or _now()
    _runs(api)[(repo, run_id)] = {
        "id": int(run_id),
        "name": "deploy-production",
        "display_title": title,
        "created_at": at,
        "run_started_at": at,
        "run_attempt": 1,
        "status": "in_progress",
    }


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def approve_run(api: FakeGitHub, repo: str, run_id: str, login: str, env: str) -> None:
    """Record a reviewer's approval of environment `env` on Actions run `run_id`. As on
    GitHub, the review history holds no review time: environments, state, user, comment."""
    _approvals(api).setdefault((repo, run_id), []).append(
        {
            "state": "approved",
            "comment": "",
            "environments": [{"name": env}],
            "user": {"login": login},
        }
    )


def _public(d: Json) -> Json:
    return {k: v for k, v in d.items() if not k.startswith("_")}


def register(api: FakeGitHub) -> None:
    """Add the deployment, approval and issue routes to `api`."""

    @api.route("POST", REPO + r"/deployments")
    def create(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        if g["repo"] not in api.state.repos:
            return error(404, "Not Found")
        body = req.json() or {}
        if not body.get("ref"):
            return invalid("Deployment", "missing_field", "ref")
        if not _known_ref(api, g["repo"], str(body["ref"])):
            return error(422, f"No ref found for: {body['ref']}")
        dep_id = api.new_id()
        deployments(api)[dep_id] = {
            "id": dep_id,
            "ref": body["ref"],
            "environment": body.get("environment", "production"),
            "description": body.get("description"),
            "payload": body.get("payload") or {},
            "_repo": g["repo"],
            "_statuses": [],
        }
        return Response(201, _public(deployments(api)[dep_id]))

    @api.route("GET", REPO + r"/deployments")
    def listing(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        env = req.query.get("environment")
        found = [
            _public(d)
            for d in deployments(api).values()
            if d["_repo"] == g["repo"] and (env is None or d["environment"] == env)
        ]
        return Response(200, found)

    @api.route("POST", REPO + r"/deployments/(?P<id>\d+)/statuses")
    def add_status(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        dep = deployments(api).get(int(g["id"]))
        if dep is None or dep["_repo"] != g["repo"]:
            return error(404, "Not Found")
        body = req.json() or {}
        if body.get("state") not in STATES:
            return invalid("DeploymentStatus", "invalid", "state")
        status = {
            "id": api.new_id(),
            "state": body["state"],
            "description": body.get("description", ""),
        }
        dep["_statuses"].append(status)
        return Response(201, status)

    @api.route("GET", REPO + r"/deployments/(?P<id>\d+)/statuses")
    def statuses(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        dep = deployments(api).get(int(g["id"]))
        if dep is None:
            return error(404, "Not Found")
        return Response(200, list(reversed(dep["_statuses"])))

    @api.route("GET", REPO + r"/actions/runs/(?P<run>\d+)")
    def get_run(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        run = _runs(api).get((g["repo"], g["run"]))
        return Response(200, run) if run is not None else error(404, "Not Found")

    @api.route("GET", REPO + r"/actions/runs/(?P<run>\d+)/approvals")
    def run_approvals(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        return Response(200, _approvals(api).get((g["repo"], g["run"]), []))

    @api.route("POST", REPO + r"/issues")
    def open_issue(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        if g["repo"] not in api.state.repos:
            return error(404, "Not Found")
        body = req.json() or {}
        if not body.get("title"):
            return invalid("Issue", "missing_field", "title")
        if len(body.get("body") or "") > 65536:
            return invalid("Issue", "custom", "body")
        number = api.new_id()
        issues(api)[number] = {
            "number": number,
            "title": body["title"],
            "body": body.get("body", ""),
            "labels": [{"name": n} for n in body.get("labels") or []],
            "html_url": f"https://github.example/{g['repo']}/issues/{number}",
        }
        return Response(201, issues(api)[number])
