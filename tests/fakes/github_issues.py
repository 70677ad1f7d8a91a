"""The issues part of the fake GitHub API: pull request comments (a PR is an issue to the
comments API). State: `comments(api)` -> {comment id: comment}, each with its repo and
issue number; `open_pull(api, repo, number)` makes a PR exist (others answer 404).

Implemented: GET /repos/{o}/{r}/issues/{n}/comments (paginated: per_page, page, Link
header), POST the same (201), PATCH /repos/{o}/{r}/issues/comments/{id} (200),
DELETE it (204). Comment bodies are limited to 65536 characters (422), as on GitHub.
"""

from __future__ import annotations

from typing import Any

from fakes.github_api import REPO, FakeGitHub, Request, Response, error, invalid

Json = dict[str, Any]
MAX_BODY = 65536


def comments(api: FakeGitHub) -> dict[int, Json]:
    """Every comment the fake holds (state, for assertions)."""
    return api.__dict__.setdefault("_issue_comments", {})


def _pulls(api: FakeGitHub) -> set[tuple[str, int]]:
    return api.__dict__.setdefault("_open_pulls", set())


def open_pull(api: FakeGitHub, repo: str, number: int) -> None:
    """Make pull request `number` of `repo` exist."""
    _pulls(api).add((repo, number))


def on_issue(api: FakeGitHub, repo: str, number: int) -> list[Json]:
    """The comments of one PR, oldest first."""
    return [c for c in comments(api).values() if c["_where"] == (repo, number)]


def _json(api: FakeGitHub, repo: str, c: Json) -> Json:
    return {
        **{k: v for k, v in c.items() if not k.startswith("_")},
        "url": f"{api.url}/repos/{repo}/issues/comments/{c['id']}",
        "html_url": f"https://github.example/{repo}/pull/{c['_where'][1]}#issuecomment-{c['id']}",
    }


def register(api: FakeGitHub) -> None:
    """Add the issue comment routes to `api`."""

    @api.route("GET", REPO + r"/issues/(?P<n>\d+)/comments")
    def list_comments(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        repo, number = g["repo"], int(g["n"])
        if (repo, number) not in _pulls(api):
            return error(404, "Not Found")
        per_page = min(int(req.query.get("per_page", 30)), api.page_size_cap)
        page = int(req.query.get("page", 1))
        found = on_issue(api, repo, number)
        chunk = found[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(found):
            nxt = f"{api.url}{req.path}?per_page={per_page}&page={page + 1}"
            headers["Link"] = f'<{nxt}>; rel="next"'
        return Response(200, [_json(api, repo, c) for c in chunk], headers)

    @api.route("POST", REPO + r"/issues/(?P<n>\d+)/comments")
    def create(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        repo, number = g["repo"], int(g["n"])
        if (repo, number) not in _pulls(api):
            return error(404, "Not Found")
        body = (req.json() or {}).get("body")
        if not body:
            return invalid("IssueComment", "missing_field", "body")
        if len(body) > MAX_BODY:
            return invalid("IssueComment", "custom", "body")
        cid = api.new_id()
        comments(api)[cid] = {"id": cid, "body": body, "_where": (repo, number)}
        return Response(201, _json(api, repo, comments(api)[cid]))

    @api.route("PATCH", REPO + r"/issues/comments/(?P<id>\d+)")
    def update(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        c = comments(api).get(int(g["id"]))
        if c is None or c["_where"][0] != g["repo"]:
            return error(404, "Not Found")
        body = (req.json() or {}).get("body")
        if not body or len(body) > MAX_BODY:
            return invalid("IssueComment", "custom", "body")
        c["body"] = body
        return Response(200, _json(api, g["repo"], c))

    @api.route("DELETE", REPO + r"/issues/comments/(?P<id>\d+)")
    def delete(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        c = comments(api).pop(int(g["id"]), None)
        return Response(204) if c is not None else error(404, "Not Found")
