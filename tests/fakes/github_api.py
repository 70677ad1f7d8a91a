"""A local HTTP server speaking the part of the GitHub REST API the pipeline uses.

Built for extension: a route table (`FakeGitHub.route`, method + path regex -> handler),
in-memory state (`State`: repositories holding releases holding assets; add more tables
for PR comments, deployments, issues), a request log (`FakeGitHub.log`), an auth check
(Bearer token) and programmable failures (`fail`: "502 once, then the real answer").

Used in-process by tests (`with FakeGitHub() as api: ...api.url...`), or standalone for a
manual trial: `python3 tests/fakes/github_api.py --repo owner/name` prints the URL and
reads the token from $GITHUB_TOKEN.

Implemented: GET /repos/{o}/{r}; releases: GET by tag, GET/PATCH by id, POST create,
GET list; assets: GET list (paginated, Link header), POST upload through `upload_url`
(a separate /uploads prefix, as uploads.github.com is a separate host), GET metadata or
bytes (Accept: application/octet-stream -> 302 to /downloads, like GitHub's storage
redirect, which needs no token), DELETE.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Json = dict[str, Any]


@dataclass
class Request:
    """One request as a handler sees it (and as the log keeps it, body included)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    @property
    def authorization(self) -> str:
        return self.headers.get("authorization", "")


@dataclass
class Response:
    """What a handler returns: status, JSON (or raw bytes) and headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def error(status: int, message: str, errors: list[Json] | None = None) -> Response:
    """A GitHub-shaped error body."""
    body: Json = {"message": message, "documentation_url": "https://docs.github.com/rest"}
    if errors:
        body["errors"] = errors
    return Response(status, body)


def invalid(resource: str, code: str, field_name: str) -> Response:
    """422 Validation Failed with one error, as GitHub reports e.g. an existing tag."""
    return error(
        422, "Validation Failed", [{"resource": resource, "code": code, "field": field_name}]
    )


@dataclass
class Failure:
    """An injected answer for matching requests, `times` times. With `apply`, the real
    handler runs first (the change happens, the client sees only the failure)."""

    method: str
    pattern: re.Pattern[str]
    status: int
    times: int = 1
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    apply: bool = False


@dataclass
class State:
    """Everything the fake stores. `repos` maps owner/name to its releases by id."""

    repos: dict[str, dict[int, Json]] = field(default_factory=dict)
    blobs: dict[int, bytes] = field(default_factory=dict)  # asset id -> bytes
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


Handler = Callable[["FakeGitHub", Request, dict[str, str]], Response]
REPO = r"/repos/(?P<repo>[^/]+/[^/]+)"


class FakeGitHub:
    """The server. `url` is the API base URL to configure the client with."""

    def __init__(
        self, token: str = "fake-token-for-tests", repos: tuple[str, ...] = ("acme/trading",)
    ) -> None:
        self.token = token
        self.state = State()
        for repo in repos:
            self.state.repos[repo] = {}
        self.log: list[Request] = []
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.failures: list[Failure] = []
        self.public_prefixes = ["/downloads/"]  # served without a token (storage host)
        self.asset_digests = True  # GitHub reports "digest": "sha256:..." on assets
        self.page_size_cap = 100
        self._lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread: threading.Thread | None = None
        _register_release_routes(self)

    # ---- lifecycle -------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeGitHub:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- extension points ------------------------------------------------------------
    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        """Register a handler for `method` and a full-match path regex (named groups are
        passed to it). Later registrations win, so a test can override a route."""

        def register(handler: Handler) -> Handler:
            self.routes.insert(0, (method, re.compile(pattern), handler))
            return handler

        return register

    def fail(
        self,
        method: str,
        path: str,
        status: int,
        *,
        times: int = 1,
        body: Any = None,
        headers: dict[str, str] | None = None,
        apply: bool = False,
    ) -> None:
        """Answer the next `times` requests matching `method` and the path regex `path`
        (searched) with `status`, e.g. fail("POST", r"/releases$", 502) = 502 once."""
        self.failures.append(
            Failure(method, re.compile(path), status, times, body, headers or {}, apply)
        )

    def requests(self, method: str | None = None, path: str | None = None) -> list[Request]:
        """The logged requests, filtered by method and path regex (searched)."""
        return [
            r
            for r in self.log
            if (method is None or r.method == method) and (path is None or re.search(path, r.path))
        ]

    def new_id(self) -> int:
        return next(self.state.ids)

    def releases(self, repo: str = "acme/trading") -> list[Json]:
        """The releases of `repo` (state, for assertions)."""
        return list(self.state.repos[repo].values())

    # ---- dispatch --------------------------------------------------------------------
    def dispatch(self, req: Request) -> Response:
        with self._lock:
            self.log.append(req)
            failure = next(
                (
                    f
                    for f in self.failures
                    if f.times > 0 and f.method == req.method and f.pattern.search(req.path)
                ),
                None,
            )
            if failure is not None:
                failure.times -= 1
                if failure.apply:
                    self._route(req)
                body = failure.body if failure.body is not None else {"message": "injected"}
                return Response(failure.status, body, dict(failure.headers))
            if not any(req.path.startswith(p) for p in self.public_prefixes):
                if not req.authorization:
                    return error(401, "Requires authentication")
                if req.authorization not in (f"Bearer {self.token}", f"token {self.token}"):
                    return error(401, "Bad credentials")
            return self._route(req)

    def _route(self, req: Request) -> Response:
        for method, pattern, handler in self.routes:
            match = pattern.fullmatch(req.path)
            if method == req.method and match:
                groups = match.groupdict()
                if "repo" in groups and groups["repo"] not in self.state.repos:
                    return error(404, "Not Found")
                return handler(self, req, groups)
        return error(404, "Not Found")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One write per response, no Nagle: keep-alive requests are not held 40 ms.
            wbufsize = 1 << 16
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                req = Request(
                    method=self.command,
                    path=parts.path,
                    query={k: v[0] for k, v in parse_qs(parts.query).items()},
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                resp = api.dispatch(req)
                if isinstance(resp.body, bytes):
                    payload, kind = resp.body, "application/octet-stream"
                elif resp.body is None:
                    payload, kind = b"", "application/json"
                else:
                    payload, kind = json.dumps(resp.body).encode(), "application/json"
                self.send_response(resp.status)
                headers = {"Content-Type": kind, **resp.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return _Handler


# ---- the releases API -----------------------------------------------------------------
def _release_json(api: FakeGitHub, repo: str, rel: Json) -> Json:
    rid = rel["id"]
    return {
        **{k: v for k, v in rel.items() if k != "assets"},
        "url": f"{api.url}/repos/{repo}/releases/{rid}",
        "html_url": f"https://github.example/{repo}/releases/tag/{rel['tag_name']}",
        "assets_url": f"{api.url}/repos/{repo}/releases/{rid}/assets",
        "upload_url": f"{api.url}/uploads/repos/{repo}/releases/{rid}/assets{{?name,label}}",
        "assets": [_asset_json(api, repo, a) for a in rel["assets"].values()],
    }


def _asset_json(api: FakeGitHub, repo: str, asset: Json) -> Json:
    data = {
        **asset,
        "url": f"{api.url}/repos/{repo}/releases/assets/{asset['id']}",
        "browser_download_url": f"{api.url}/downloads/{asset['id']}/{asset['name']}",
    }
    if not api.asset_digests:
        data.pop("digest", None)
    return data


def _find(api: FakeGitHub, repo: str, release_id: str) -> Json | None:
    return api.state.repos[repo].get(int(release_id))


def _register_release_routes(api: FakeGitHub) -> None:
    @api.route("GET", REPO)
    def get_repo(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        return Response(200, {"full_name": g["repo"], "private": False})

    @api.route("GET", REPO + "/releases")
    def list_releases(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        rels = api.state.repos[g["repo"]].values()
        return Response(200, [_release_json(api, g["repo"], r) for r in rels])

    @api.route("GET", REPO + r"/releases/tags/(?P<tag>.+)")
    def by_tag(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        for rel in api.state.repos[g["repo"]].values():
            if rel["tag_name"] == g["tag"] and not rel["draft"]:
                return Response(200, _release_json(api, g["repo"], rel))
        return error(404, "Not Found")

    @api.route("POST", REPO + "/releases")
    def create(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        body = req.json() or {}
        tag = body.get("tag_name")
        if not tag:
            return invalid("Release", "missing_field", "tag_name")
        releases = api.state.repos[g["repo"]]
        if any(r["tag_name"] == tag and not r["draft"] for r in releases.values()):
            return invalid("Release", "already_exists", "tag_name")
        rel = {
            "id": api.new_id(),
            "tag_name": tag,
            "target_commitish": body.get("target_commitish", "main"),
            "name": body.get("name") or tag,
            "body": body.get("body", ""),
            "draft": bool(body.get("draft", False)),
            "prerelease": bool(body.get("prerelease", False)),
            "assets": {},
        }
        releases[rel["id"]] = rel
        return Response(201, _release_json(api, g["repo"], rel))

    @api.route("GET", REPO + r"/releases/(?P<id>\d+)")
    def get_release(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        rel = _find(api, g["repo"], g["id"])
        return Response(200, _release_json(api, g["repo"], rel)) if rel else error(404, "Not Found")

    @api.route("PATCH", REPO + r"/releases/(?P<id>\d+)")
    def update(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        rel = _find(api, g["repo"], g["id"])
        if rel is None:
            return error(404, "Not Found")
        for key in ("name", "body", "draft", "prerelease", "tag_name"):
            if key in (req.json() or {}):
                rel[key] = req.json()[key]
        return Response(200, _release_json(api, g["repo"], rel))

    @api.route("GET", REPO + r"/releases/(?P<id>\d+)/assets")
    def list_assets(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        rel = _find(api, g["repo"], g["id"])
        if rel is None:
            return error(404, "Not Found")
        per_page = min(int(req.query.get("per_page", 30)), api.page_size_cap)
        page = int(req.query.get("page", 1))
        assets = list(rel["assets"].values())
        chunk = assets[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(assets):
            nxt = f"{api.url}{req.path}?per_page={per_page}&page={page + 1}"
            headers["Link"] = f'<{nxt}>; rel="next"'
        return Response(200, [_asset_json(api, g["repo"], a) for a in chunk], headers)

    @api.route("POST", "/uploads" + REPO + r"/releases/(?P<id>\d+)/assets")
    def upload(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        rel = _find(api, g["repo"], g["id"])
        name = req.query.get("name")
        if rel is None:
            return error(404, "Not Found")
        if not name:
            return invalid("ReleaseAsset", "missing_field", "name")
        if any(a["name"] == name for a in rel["assets"].values()):
            return invalid("ReleaseAsset", "already_exists", "name")
        kind = req.headers.get("content-type", "")
        asset = add_asset(api, rel, name, req.body, kind)
        return Response(201, _asset_json(api, g["repo"], asset))

    @api.route("GET", REPO + r"/releases/assets/(?P<id>\d+)")
    def get_asset(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        for rel in api.state.repos[g["repo"]].values():
            asset = rel["assets"].get(int(g["id"]))
            if asset is None:
                continue
            if req.headers.get("accept") == "application/octet-stream":
                where = f"{api.url}/downloads/{asset['id']}/{asset['name']}"
                return Response(302, None, {"Location": where})
            return Response(200, _asset_json(api, g["repo"], asset))
        return error(404, "Not Found")

    @api.route("DELETE", REPO + r"/releases/assets/(?P<id>\d+)")
    def delete_asset(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        for rel in api.state.repos[g["repo"]].values():
            if rel["assets"].pop(int(g["id"]), None) is not None:
                api.state.blobs.pop(int(g["id"]), None)
                return Response(204)
        return error(404, "Not Found")

    @api.route("GET", r"/downloads/(?P<id>\d+)/(?P<name>[^/]+)")
    def download(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        blob = api.state.blobs.get(int(g["id"]))
        return Response(200, blob) if blob is not None else error(404, "Not Found")


def add_asset(
    api: FakeGitHub, rel: Json, name: str, data: bytes, content_type: str, state: str = "uploaded"
) -> Json:
    """Store an asset on a release (also for tests that set up a release by hand, e.g. a
    half-uploaded asset with state "starter")."""
    asset = {
        "id": api.new_id(),
        "name": name,
        "label": None,
        "state": state,
        "content_type": content_type,
        "size": len(data),
        "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
        "download_count": 0,
    }
    rel["assets"][asset["id"]] = asset
    api.state.blobs[asset["id"]] = data
    return asset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", action="append", default=[], help="owner/name (repeatable)")
    args = parser.parse_args()
    token = os.environ.get("GITHUB_TOKEN", "fake-token-for-tests")
    with FakeGitHub(token, tuple(args.repo or ["acme/trading"])) as api:
        print(f"fake GitHub API at {api.url} (repos: {', '.join(api.state.repos)})", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
