"""The one GitHub REST client of the pipeline (requests): releases, the PR comment,
deployments and issues all send through `GitHub.request`.

The token is sent only in the Authorization header: it is never printed, never put in a
URL or an argument list, never written. 5xx, rate limits (primary and secondary, 403 or
429) and connection failures are retried through the shared policy (ci/github/retry.py),
waiting what GitHub asks; every other failure becomes one line that says what to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from ci.errors import PipelineError
from ci.github.retry import OK, Backoff, Verdict, retry_after, retrying

DEFAULT_API = "https://api.github.com"
API_VERSION = "2022-11-28"
Json = dict[str, Any]


# GitHub's rule for a secondary rate limit that names no time: wait at least a minute.
SECONDARY_WAIT_S = 60.0


def _server_now(resp: requests.Response, now: Callable[[], float]) -> float:
    """The server's clock (its Date header), so a reset time is not skewed by ours."""
    try:
        return parsedate_to_datetime(resp.headers.get("Date", "")).timestamp()
    except (TypeError, ValueError, IndexError):
        return now()


def classify(resp: requests.Response, now: Callable[[], float] = time.time) -> Verdict:
    """Retry server errors and rate limits, with the wait GitHub asks for: Retry-After,
    else until X-RateLimit-Reset when the limit is used up (403 or 429), else a minute
    for a secondary rate limit (429, or 403 saying so). Any other 403 is a permission
    problem: not retried."""
    status = resp.status_code
    why = f"{status} {resp.reason or ''}".strip()
    if status >= 500:
        return Verdict(True, why, retry_after(resp.headers, _server_now(resp, now)))
    if status not in (403, 429):
        return OK
    server_now = _server_now(resp, now)
    hint = retry_after(resp.headers, server_now)
    reset = resp.headers.get("X-RateLimit-Reset", "").strip()
    if hint is None and resp.headers.get("X-RateLimit-Remaining") == "0" and reset.isdigit():
        hint = max(0.0, float(reset) - server_now)
    if hint is None and (status == 429 or "secondary rate limit" in _message(resp)[0].lower()):
        hint = SECONDARY_WAIT_S
    return OK if hint is None else Verdict(True, why, hint)


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
        if "secondary rate limit" in message.lower() or "retry-after" in resp.headers:
            return (
                f"GitHub's secondary rate limit refused to {action} (403): too many requests "
                "in a short time; retry later"
            )
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

        stopped: list[str] = []
        try:
            resp = retrying(
                send,
                classify,
                self.backoff,
                retry_on=(requests.ConnectionError, requests.Timeout),
                sleep=self.sleep,
                clock=self.clock,
                on_retry=told,
                on_give_up=stopped.append,
            )
        except (requests.ConnectionError, requests.Timeout) as err:
            raise self.error(
                f"cannot reach the GitHub API at {urlsplit(url).netloc} to {action} "
                f"({type(err).__name__}); check the network or {self.api_setting}"
            ) from None
        if resp.status_code in ok or resp.status_code in allow:
            return resp
        raise self.error(
            self.explain(resp, action) + "".join(f"; stopped retrying: {s}" for s in stopped)
        )
