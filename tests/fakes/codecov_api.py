"""A local HTTP server speaking the part of Codecov's upload API that Codecov's official
uploader calls (`codecovcli upload-coverage`, codecov-cli 11.3.1, read from its source:
codecov_cli/services/upload/upload_sender.py), plus the storage the upload is PUT to.
The pipeline uploads through that CLI, pointed here with its `--url`.

Same shape as github_api.py: in-memory state (`uploads`), a request log (`log`), an auth
check (`Authorization: token <T>`) and programmable failures (`fail`: "503 twice, then
the real answer"). Requests and responses are github_api's dataclasses.

Implemented:
- `POST /upload/{service}/{slug}/upload-coverage`: `slug` encoded as the CLI does
  (`owner::::repo`, subgroups joined by `:::`); a JSON body that must name `commitid`
  (the commit the report belongs to) and the report `code`; answers 201 with
  `raw_upload_location` (a pre-signed URL on this server's `/storage/`, which takes no
  token, like S3) and `url` (where Codecov would show the commit). Refused as Codecov
  refuses: 401 for a missing or wrong token, 404 for an unknown git service or
  repository, 400 for a body that is not a JSON object or lacks the commit.
- `PUT /storage/{id}?X-Amz-Signature=...`: the report payload; its `coverage_files` are
  decoded (base64 + zlib) into `Upload.files`. 404 for an unknown or reused location,
  400 for a payload that is not the CLI's (no `coverage_files` list, other encodings).
Anything else is 404: a client calling more than this contract fails loudly here.

In-process: `with FakeCodecov(token) as api: ...api.url...`; standalone for a manual
trial: `python3 tests/fakes/codecov_api.py --repo owner/name` (token from $CODECOV_TOKEN).
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import re
import sys
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `fakes` importable

from fakes.github_api import Request, Response
from fakes.server import LocalServer

SERVICES = {"github", "gitlab", "bitbucket", "github_enterprise", "gitlab_enterprise"}
UPLOAD = re.compile(r"/upload/(?P<service>[^/]+)/(?P<slug>[^/]+)/upload-coverage")
STORAGE = re.compile(r"/storage/(?P<id>\d+)")


@dataclass
class Upload:
    """One upload: what the client said about it, and the files it stored."""

    id: int
    service: str
    slug: str
    body: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)  # filename -> decoded report
    stored: bool = False


def decode_slug(encoded: str) -> str:
    """`group:::sub::::repo` back to `group/sub/repo`."""
    owner, _, repo = encoded.rpartition("::::")
    return "/".join([*owner.split(":::"), repo]) if owner else ""


class FakeCodecov(LocalServer):
    """The server. `url` is what `[tool.pipeline.coverage.codecov] url` is set to."""

    def __init__(
        self, token: str = "fake-codecov-token", repos: tuple[str, ...] = ("acme/trading",)
    ) -> None:
        self.token = token
        self.repos = set(repos)
        self.uploads: list[Upload] = []
        self.log: list[Request] = []
        self.failures: list[tuple[str, re.Pattern[str], int, int]] = []
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._listen(self._handler_class())

    @property
    def url(self) -> str:
        return self.base_url

    def fail(self, method: str, path: str, status: int, *, times: int = 1) -> None:
        """Answer the next `times` requests of `method` whose path matches the regex
        `path` (searched) with `status` and nothing done."""
        self.failures.append((method, re.compile(path), status, times))

    def requests(self, method: str | None = None, path: str | None = None) -> list[Request]:
        """The logged requests, filtered by method and path regex (searched)."""
        return [
            r
            for r in self.log
            if (method is None or r.method == method) and (path is None or re.search(path, r.path))
        ]

    # ---- dispatch --------------------------------------------------------------------
    def dispatch(self, req: Request) -> Response:
        with self._lock:
            self.log.append(req)
            for i, (method, pattern, status, times) in enumerate(self.failures):
                if times > 0 and method == req.method and pattern.search(req.path):
                    self.failures[i] = (method, pattern, status, times - 1)
                    return Response(status, {"detail": "injected failure"})
            match = UPLOAD.fullmatch(req.path)
            if match and req.method == "POST":
                return self._upload(req, match["service"], match["slug"])
            match = STORAGE.fullmatch(req.path)
            if match and req.method == "PUT":
                return self._store(req, int(match["id"]))
            return Response(404, {"detail": "Not found."})

    def _upload(self, req: Request, service: str, encoded: str) -> Response:
        auth = req.authorization
        if not auth:
            return Response(401, {"detail": "Authentication credentials were not provided."})
        if auth != f"token {self.token}":
            return Response(401, {"detail": "Invalid token."})
        slug = decode_slug(encoded)
        if service not in SERVICES or slug not in self.repos:
            return Response(404, {"detail": "Repository not found."})
        try:
            body = req.json()
        except ValueError:
            return Response(400, {"detail": "JSON parse error"})
        if not isinstance(body, dict):
            return Response(400, {"detail": "Expected a JSON object."})
        missing = [key for key in ("commitid", "code") if not body.get(key)]
        if missing:
            return Response(400, {key: ["This field is required."] for key in missing})
        upload = Upload(next(self._ids), service, slug, body)
        self.uploads.append(upload)
        return Response(
            201,
            {
                "raw_upload_location": f"{self.url}/storage/{upload.id}?X-Amz-Signature=fake",
                "url": f"https://app.codecov.io/{service}/{slug}/commit/{body['commitid']}",
            },
        )

    def _store(self, req: Request, upload_id: int) -> Response:
        upload = next((u for u in self.uploads if u.id == upload_id), None)
        if upload is None or upload.stored or "X-Amz-Signature" not in req.query:
            return Response(404, {"detail": "NoSuchKey"})
        try:
            payload = json.loads(req.body)
            assert isinstance(payload["coverage_files"], list)
            assert isinstance(payload["network_files"], list)
            for item in payload["coverage_files"]:
                assert item["format"] == "base64+compressed"
                upload.files[item["filename"]] = zlib.decompress(base64.b64decode(item["data"]))
        except (ValueError, KeyError, TypeError, AssertionError, zlib.error):
            return Response(400, {"detail": "malformed upload payload"})
        upload.stored = True
        return Response(200, b"")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

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
                raw = resp.body if isinstance(resp.body, bytes) else json.dumps(resp.body).encode()
                self.send_response(resp.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_POST = do_PUT = do_GET = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return _Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", action="append", default=[], help="owner/name (repeatable)")
    args = parser.parse_args()
    token = os.environ.get("CODECOV_TOKEN", "fake-codecov-token")
    with FakeCodecov(token, tuple(args.repo or ["acme/trading"])) as api:
        print(f"fake Codecov at {api.url} (repos: {', '.join(sorted(api.repos))})", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
