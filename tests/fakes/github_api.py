"""A local HTTP server speaking the part of the GitHub REST API the pipeline uses.

Built for extension: a route table (`FakeGitHub.route`, method + path regex -> handler),
in-memory state (`State`: repositories holding releases holding assets; add more tables
for PR comments, deployments, issues), a request log (`FakeGitHub.log`), an auth check
(Bearer token) and programmable failures (`fail`: "502 once, then the real answer").

The releases API lives in github_releases.py; each further API area gets its own module
with a `register(api)` that adds its routes and, if needed, a table to `State`.

Used in-process by tests (`with FakeGitHub() as api: ...api.url...`), or standalone for a
manual trial: `python3 tests/fakes/github_api.py --repo owner/name` prints the URL and
reads the token from $GITHUB_TOKEN.

Implemented: GET /repos/{o}/{r}; releases: GET by tag, GET/PATCH by id, POST create,
GET list; assets: GET list (paginated, Link header), POST upload through `upload_url`
(a separate /uploads prefix, as uploads.github.com is a separate host), GET metadata or
bytes (Accept: application/octet-stream -> 302 to /downloads, like GitHub's storage
redirect, which needs no token), DELETE. PR comments: github_issues.py. Deployments,
run approvals and issues: github_deployments.py.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `fakes` importable

from fakes.server import LocalServer

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


class FakeGitHub(LocalServer):
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
        self._listen(self._handler_class())
        from fakes import github_deployments, github_issues, github_releases

        github_releases.register(self)  # more API areas register alike
        github_issues.register(self)
        github_deployments.register(self)

    # ---- lifecycle -------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.base_url

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
