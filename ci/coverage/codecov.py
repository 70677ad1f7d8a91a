"""Upload of the Cobertura report to Codecov (requests), following the contract of
Codecov's own CLI (`codecovcli upload-coverage`):

1. `POST {url}/upload/{service}/{slug}/upload-coverage` with `Authorization: token <T>`
   and a JSON body naming the commit, branch, pull request, report code and flags;
   the answer holds `raw_upload_location` (a pre-signed storage URL) and `url`.
2. `PUT raw_upload_location` with the report payload: JSON whose `coverage_files`
   hold each file zlib-compressed and base64-encoded. The token is not sent there.

The token is read from the environment by the caller and only ever put in that header:
never printed, never on a command line, never in a URL or a file. 5xx answers and
connection failures are retried with bounded backoff; anything else is one line.
"""

from __future__ import annotations

import base64
import json
import re
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from ci.coverage.config import CodecovConfig
from ci.errors import PipelineError
from ci.github.client import classify
from ci.github.retry import Backoff, retrying

CLIENT = "rust-trading-pipeline"
_PR_REF = re.compile(r"^refs/pull/(\d+)/merge$")


class UploadError(PipelineError):
    """Codecov refused the upload or kept failing after the retries."""

    exit_code = 21


@dataclass(frozen=True)
class UploadMeta:
    """What Codecov files an upload under."""

    commit: str
    slug: str
    branch: str = ""
    pull_request: str = ""
    build: str = ""
    build_url: str = ""
    job: str = ""
    ci_service: str = ""
    flags: tuple[str, ...] = ()
    name: str = ""
    env: dict[str, str] = field(default_factory=dict)


def encode_slug(slug: str) -> str:
    """`owner/name` (or `group/subgroup/name`) as Codecov's upload paths spell it:
    subgroups joined by `:::`, the repository by `::::`."""
    parts = [p for p in slug.strip().split("/") if p]
    if len(parts) < 2:
        raise UploadError(
            f"Codecov needs the repository as owner/name, got {slug!r}: set "
            "[tool.pipeline.coverage.codecov] slug or GITHUB_REPOSITORY"
        )
    return ":::".join(parts[:-1]) + "::::" + parts[-1]


def metadata(cfg: CodecovConfig, env: Mapping[str, str], commit: str, branch: str) -> UploadMeta:
    """The upload's metadata from the configuration and the CI environment (GitHub
    Actions variables when present): slug, pull request number, run URL, job."""
    slug = cfg.slug or env.get("GITHUB_REPOSITORY", "").strip()
    match = _PR_REF.match(env.get("GITHUB_REF", "").strip())
    pr = match.group(1) if match and env.get("GITHUB_HEAD_REF") else ""
    run = env.get("GITHUB_RUN_ID", "").strip()
    server = env.get("GITHUB_SERVER_URL", "").strip()
    build_url = f"{server}/{slug}/actions/runs/{run}" if server and slug and run else ""
    return UploadMeta(
        commit=commit,
        slug=slug,
        branch=branch,
        pull_request=pr,
        build=run,
        build_url=build_url,
        job=env.get("GITHUB_WORKFLOW", "").strip(),
        ci_service="github-actions" if env.get("GITHUB_ACTIONS") == "true" else "",
        flags=cfg.flags,
        name=cfg.name,
    )


def payload(report: bytes, filename: str) -> bytes:
    """The storage payload for one Cobertura report, as Codecov's CLI builds it."""
    body = {
        "report_fixes": {"format": "legacy", "value": {}},
        "network_files": [],
        "coverage_files": [
            {
                "filename": filename,
                "format": "base64+compressed",
                "data": base64.b64encode(zlib.compress(report)).decode(),
                "labels": "",
            }
        ],
        "metadata": {},
    }
    return json.dumps(body).encode()


def _message(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        text = (resp.text or "").strip()
        return text.splitlines()[0][:200] if text else ""
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("message") or "")[:200]
    return ""


def explain(resp: requests.Response, action: str, slug: str) -> str:
    """One line for a refused request, saying what to do."""
    status, said = resp.status_code, _message(resp)
    detail = f" ({status}{': ' + said if said else ''})"
    if status == 401:
        return (
            f"Codecov rejected CODECOV_TOKEN while trying to {action}{detail}: "
            "set a valid upload token"
        )
    if status == 403:
        return f"Codecov refused to {action}{detail}: the token is not allowed to upload to {slug}"
    if status == 404:
        return (
            f"Codecov does not know {slug} while trying to {action}{detail}: check "
            "[tool.pipeline.coverage.codecov] slug and service"
        )
    return (
        f"Codecov answered {status} {said or resp.reason or ''} while trying to {action}".rstrip()
    )


class Codecov:
    """One upload session: the token lives only in this object's request headers."""

    def __init__(
        self,
        cfg: CodecovConfig,
        token: str,
        *,
        say: Callable[[str], None] = print,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        session: requests.Session | None = None,
    ) -> None:
        self.cfg = cfg
        self.backoff = Backoff(
            attempts=cfg.attempts, first=cfg.backoff, ceiling=30.0, budget=10 * cfg.timeout
        )
        self.say = say
        self.sleep = sleep
        self.clock = clock
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = CLIENT
        self._auth = {"Authorization": f"token {token}"}

    def close(self) -> None:
        """Release the connection pool."""
        self.session.close()

    def _send(self, action: str, method: str, url: str, **kwargs: Any) -> requests.Response:
        def attempt() -> requests.Response:
            return self.session.request(method, url, timeout=self.cfg.timeout, **kwargs)

        def note(why: str, wait: float, number: int) -> None:
            self.say(f"codecov: {action}: {why}; try {number} in {wait:.1f}s")

        try:
            return retrying(
                attempt,
                classify,
                self.backoff,
                retry_on=(requests.ConnectionError, requests.Timeout),
                sleep=self.sleep,
                clock=self.clock,
                on_retry=note,
            )
        except (requests.ConnectionError, requests.Timeout) as err:
            raise UploadError(
                f"cannot reach Codecov at {self.cfg.url} to {action} after "
                f"{self.cfg.attempts} tries: {type(err).__name__}"
            ) from None

    def upload(self, report: bytes, filename: str, meta: UploadMeta) -> str:
        """Upload `report` (Cobertura XML bytes); returns where Codecov will show it.
        UploadError (one line) when Codecov refuses it or stays unreachable."""
        slug = encode_slug(meta.slug)
        body = payload(report, filename)
        request = {
            "branch": meta.branch or None,
            "code": "default",
            "commitid": meta.commit,
            "parent_commit_id": None,
            "pullid": meta.pull_request or None,
            "ci_service": meta.ci_service or None,
            "ci_url": meta.build_url or None,
            "cli_args": None,
            "env": meta.env,
            "flags": list(meta.flags),
            "job_code": meta.build or None,
            "name": meta.name or None,
            "version": CLIENT,
            "file_not_found": False,
            "report_payload_bytes": len(body),
        }
        url = f"{self.cfg.url}/upload/{self.cfg.service}/{slug}/upload-coverage"
        action = f"register the upload for {meta.commit[:12]}"
        resp = self._send(action, "POST", url, json=request, headers=self._auth)
        if resp.status_code >= 400:
            raise UploadError(explain(resp, action, meta.slug))
        try:
            answer = resp.json()
            location = str(answer["raw_upload_location"])
        except (ValueError, KeyError, TypeError):
            raise UploadError(
                "Codecov's answer to the upload request has no raw_upload_location "
                f"({resp.status_code})"
            ) from None
        store = "send the report to Codecov's storage"
        stored = self._send(store, "PUT", location, data=body)
        if stored.status_code >= 400:
            raise UploadError(explain(stored, store, meta.slug))
        return str(answer.get("url") or "")
