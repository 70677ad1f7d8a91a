"""A small GitHub REST client for releases and their assets (requests).

The token is sent only in the Authorization header: it is never printed, never put in a
URL or an argument list, never written. 5xx, 429 and connection failures are retried with
bounded backoff; every other failure becomes one line that says what to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from ci.errors import PipelineError
from ci.release.errors import PublishError
from ci.release.retry import OK, Backoff, Verdict, retrying

DEFAULT_API = "https://api.github.com"
API_VERSION = "2022-11-28"
Json = dict[str, Any]


def classify(resp: requests.Response) -> Verdict:
    """Retry server errors and rate limiting (429), honouring Retry-After."""
    if resp.status_code >= 500 or resp.status_code == 429:
        hint: float | None = None
        after = resp.headers.get("Retry-After", "")
        if after.strip().isdigit():
            hint = float(after.strip())
        return Verdict(True, f"{resp.status_code} {resp.reason or ''}".strip(), hint)
    return OK


def _message(resp: requests.Response) -> tuple[str, list[Json]]:
    try:
        body = resp.json()
    except ValueError:
        return (resp.text or resp.reason or "").strip()[:200], []
    if not isinstance(body, dict):
        return "", []
    errors = body.get("errors")
    return str(body.get("message", "")), errors if isinstance(errors, list) else []


def explain(resp: requests.Response, action: str, repository: str) -> str:
    """One line for a failed request: what GitHub said and what to do about it."""
    status = resp.status_code
    message, errors = _message(resp)
    if status == 401:
        return (
            f"GitHub rejected the token while trying to {action} (401 {message or 'Unauthorized'})"
            ": GITHUB_TOKEN is invalid or expired; set a valid token"
        )
    if status == 403:
        if resp.headers.get("X-RateLimit-Remaining") == "0":
            return f"GitHub rate limit exhausted while trying to {action} (403): retry later"
        return (
            f"GitHub refused to {action} (403 {message}): the token needs "
            f"'contents: write' permission on {repository}"
        )
    if status == 404:
        return (
            f"GitHub answered 404 Not Found while trying to {action}: repository {repository} "
            "does not exist or the token cannot access it (check GITHUB_REPOSITORY and the "
            "token's repository access)"
        )
    if status == 422:
        details = "; ".join(
            " ".join(str(e.get(k)) for k in ("resource", "field", "code", "message") if e.get(k))
            for e in errors
            if isinstance(e, dict)
        )
        return f"GitHub rejected the request to {action} (422 {message or 'Validation Failed'}" + (
            f": {details})" if details else ")"
        )
    return f"GitHub answered {status} {message or resp.reason} while trying to {action}"


def _already_exists(resp: requests.Response) -> bool:
    return resp.status_code == 422 and any(
        isinstance(e, dict) and e.get("code") == "already_exists" for e in _message(resp)[1]
    )


class GitHub:
    """Releases and assets of one repository; `request` is the one retrying, one-line-
    error way every part of the pipeline talks to GitHub (the PR comment and the
    production records use it with their own error type, wording and settings hint)."""

    def __init__(
        self,
        api_url: str,
        repository: str,
        token: str,
        *,
        backoff: Backoff | None = None,
        timeout: float = 60.0,
        say: Callable[[str], None] = print,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        session: requests.Session | None = None,
        error: type[PipelineError] = PublishError,
        explain_with: Callable[[requests.Response, str], str] | None = None,
        api_setting: str = "[tool.pipeline.release] api_url",
        agent: str = "rust-trading-pipeline-release",
    ) -> None:
        self.api = api_url.rstrip("/")
        self.repository = repository
        self.backoff = backoff or Backoff()
        self.timeout = timeout
        self.say = say
        self.sleep = sleep
        self.clock = clock
        self.error = error
        self.explain = explain_with or (lambda resp, action: explain(resp, action, repository))
        self.api_setting = api_setting
        self.session = session or requests.Session()
        self.session.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": agent,
            }
        )

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()

    def _repo_url(self, path: str) -> str:
        return f"{self.api}/repos/{self.repository}{path}"

    def request(
        self,
        method: str,
        url: str,
        action: str,
        *,
        ok: tuple[int, ...] = (200,),
        allow: tuple[int, ...] = (),
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request with retries. A status in `ok` or `allow` is returned; any
        other is `error` with the `explain_with` line."""

        def send() -> requests.Response:
            return self.session.request(method, url, timeout=self.timeout, **kwargs)

        def told(why: str, wait: float, attempt: int) -> None:
            path = urlsplit(url).path
            self.say(
                f"github: {why} on {method} {path}; "
                f"attempt {attempt}/{self.backoff.attempts} in {wait:.1f}s"
            )

        try:
            resp = retrying(
                send,
                classify,
                self.backoff,
                retry_on=(requests.ConnectionError, requests.Timeout),
                sleep=self.sleep,
                clock=self.clock,
                on_retry=told,
            )
        except (requests.ConnectionError, requests.Timeout) as err:
            raise self.error(
                f"cannot reach the GitHub API at {urlsplit(url).netloc} to {action} "
                f"({type(err).__name__}); check the network or {self.api_setting}"
            ) from None
        if resp.status_code in ok or resp.status_code in allow:
            return resp
        raise self.error(self.explain(resp, action))

    def release_by_tag(self, tag: str) -> Json | None:
        """The published release of `tag`, or None."""
        url = self._repo_url(f"/releases/tags/{quote(tag, safe='')}")
        resp = self.request("GET", url, f"look up the release {tag}", allow=(404,))
        if resp.status_code == 404:
            # 404 is also what an unknown repository gives: tell the two apart.
            self.request("GET", self._repo_url(""), f"read repository {self.repository}")
            return None
        return resp.json()

    def create_release(
        self, tag: str, *, commit: str, prerelease: bool, body: str
    ) -> tuple[Json, bool]:
        """(the release of `tag`, True) after creating it, published rather than a draft.
        When another job created it first (422 already_exists): (that release, False)."""
        payload = {
            "tag_name": tag,
            "target_commitish": commit,
            "name": tag,
            "body": body,
            "draft": False,
            "prerelease": prerelease,
        }
        action = f"create the release {tag}"
        url = self._repo_url("/releases")
        resp = self.request("POST", url, action, ok=(201,), allow=(422,), json=payload)
        if resp.status_code == 201:
            return resp.json(), True
        if _already_exists(resp):
            existing = self.release_by_tag(tag)
            if existing is not None:
                return existing, False
        raise PublishError(explain(resp, action, self.repository))

    def update_release(self, release: Mapping[str, Any], **fields: Any) -> Json:
        """Change fields of a release (e.g. `prerelease`)."""
        url = self._repo_url(f"/releases/{release['id']}")
        action = f"update the release {release.get('tag_name')}"
        return self.request("PATCH", url, action, json=fields).json()

    def assets(self, release: Mapping[str, Any]) -> list[Json]:
        """Every asset of the release (following pagination)."""
        url: str | None = self._repo_url(f"/releases/{release['id']}/assets?per_page=100")
        found: list[Json] = []
        while url:
            resp = self.request("GET", url, f"list the assets of release {release['tag_name']}")
            found.extend(resp.json())
            url = resp.links.get("next", {}).get("url")
        return found

    def upload(
        self, release: Mapping[str, Any], name: str, data: bytes, content_type: str
    ) -> Json | None:
        """Upload one asset through the release's `upload_url`. None when an asset of that
        name appeared meanwhile (422 already_exists): the caller lists again and decides."""
        url = str(release["upload_url"]).split("{", 1)[0]
        resp = self.request(
            "POST",
            url,
            f"upload {name}",
            ok=(201,),
            allow=(422,),
            params={"name": name},
            data=data,
            headers={"Content-Type": content_type},
        )
        if resp.status_code == 201:
            return resp.json()
        if _already_exists(resp):
            return None
        raise PublishError(explain(resp, f"upload {name}", self.repository))

    def delete_asset(self, asset: Mapping[str, Any]) -> None:
        """Delete one asset (already gone is fine)."""
        url = self._repo_url(f"/releases/assets/{asset['id']}")
        self.request("DELETE", url, f"delete asset {asset['name']}", ok=(204,), allow=(404,))

    def download(self, asset: Mapping[str, Any]) -> bytes | None:
        """The asset's bytes, or None when it is gone (another job replaced it). The API
        redirects to storage; requests does not forward the token to another host."""
        url = self._repo_url(f"/releases/assets/{asset['id']}")
        resp = self.request(
            "GET",
            url,
            f"download asset {asset['name']}",
            allow=(404,),
            headers={"Accept": "application/octet-stream"},
        )
        return None if resp.status_code == 404 else resp.content
