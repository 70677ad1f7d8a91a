"""The one GitHub REST client of the pipeline (requests): releases, the PR comment,
deployments and issues all send through `GitHub.request`.

The token is sent only in the Authorization header: it is never printed, never put in a
URL or an argument list, never written. 5xx, 429 and connection failures are retried with
bounded backoff; every other failure becomes one line that says what to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests

from ci.errors import PipelineError
from ci.github.retry import OK, Backoff, Verdict, retrying

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


def already_exists(resp: requests.Response) -> bool:
    return resp.status_code == 422 and any(
        isinstance(e, dict) and e.get("code") == "already_exists" for e in _message(resp)[1]
    )


class GitHubError(PipelineError):
    """The GitHub API refused a request or kept failing after retries."""


class GitHub:
    """One repository's API; `request` is the one retrying, one-line-error way every part
    of the pipeline talks to GitHub (each caller passes its own error type, wording and
    settings hint)."""

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
        error: type[PipelineError] = GitHubError,
        explain_with: Callable[[requests.Response, str], str] | None = None,
        api_setting: str = "[tool.pipeline.release] api_url",
        agent: str = "rust-trading-pipeline",
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

    def repo_url(self, path: str) -> str:
        """The API URL of `path` under this repository."""
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
