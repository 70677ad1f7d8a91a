"""The pipeline's one comment on a pull request: the `summary.md` body, found again by a
hidden marker (`<!-- rust-trading-pipeline:summary -->`) and updated in place by later
runs, so a PR carries one current summary instead of one comment per push.

The token comes from GITHUB_TOKEN only and travels only in the Authorization header
(never printed, never in a URL or file). 5xx, 429 and connection errors are retried with
bounded backoff (ci/release/retry.py); anything else is one line that says what to do.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from ci.github.client import DEFAULT_API, GitHub
from ci.github.retry import Backoff
from ci.reports.errors import CommentError

MAX_BODY = 65000  # GitHub refuses comment bodies over 65536 characters
Json = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """Where the comment goes."""

    api: str
    repository: str
    pull_request: int


def marker_line(marker: str) -> str:
    """The hidden line that identifies our comment."""
    return f"<!-- {marker} -->"


def body_for(summary: str, marker: str) -> str:
    """The comment body: the marker, then the summary (cut to GitHub's limit)."""
    text = summary.rstrip() + "\n"
    if len(text) > MAX_BODY:
        text = text[:MAX_BODY].rsplit("\n", 1)[0] + "\n\n… (cut: the full summary is in the "
        text += "workflow's step summary and the pipeline-report artifact)\n"
    return f"{marker_line(marker)}\n{text}"


def pull_request_number(env: Mapping[str, str], configured: int = 0) -> int | None:
    """The PR to comment on: configured, else the one GitHub Actions is building (the
    event payload, else `refs/pull/<n>/merge`)."""
    if configured > 0:
        return configured
    event = env.get("GITHUB_EVENT_PATH", "")
    if event:
        try:
            payload = json.loads(Path(event).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            payload = {}
        number = (payload.get("pull_request") or {}).get("number")
        if isinstance(number, int) and number > 0:
            return number
    parts = env.get("GITHUB_REF", "").split("/")
    if len(parts) == 4 and parts[:2] == ["refs", "pull"] and parts[2].isdigit():
        return int(parts[2])
    return None


def explain(resp: requests.Response, action: str, target: Target) -> str:
    """One line for a refused request."""
    status = resp.status_code
    try:
        message = str((resp.json() or {}).get("message", ""))
    except ValueError:
        message = (resp.text or resp.reason or "")[:200]
    if status == 401:
        return f"GitHub rejected GITHUB_TOKEN (401 {message}) trying to {action}: set a valid token"
    if status == 403:
        return (
            f"GitHub refused to {action} (403 {message}): the token needs "
            f"'pull-requests: write' on {target.repository} (a fork's pull request gets a "
            "read-only token)"
        )
    if status == 404:
        return (
            f"GitHub answered 404 trying to {action}: pull request #{target.pull_request} of "
            f"{target.repository} does not exist or the token cannot see it"
        )
    return f"GitHub answered {status} {message or resp.reason} trying to {action}"


class Commenter:
    """Finds, creates and updates the one summary comment of a pull request."""

    def __init__(
        self,
        target: Target,
        token: str,
        *,
        backoff: Backoff | None = None,
        timeout: float = 30.0,
        say: Callable[[str], None] = print,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.client = GitHub(
            target.api,
            target.repository,
            token,
            backoff=backoff,
            timeout=timeout,
            say=say,
            sleep=sleep,
            clock=clock,
            error=CommentError,
            explain_with=lambda resp, action: explain(resp, action, target),
            api_setting="[tool.pipeline.report] api_url",
            agent="rust-trading-pipeline-report",
        )

    def close(self) -> None:
        """Close the HTTP session."""
        self.client.close()

    def _request(
        self, method: str, url: str, action: str, ok: int, **kwargs: Any
    ) -> requests.Response:
        return self.client.request(method, url, action, ok=(ok,), **kwargs)

    def _issue_url(self, path: str) -> str:
        return f"{self.target.api.rstrip('/')}/repos/{self.target.repository}/issues{path}"

    def find(self, marker: str) -> Json | None:
        """Our earlier comment on the PR (the first one carrying the marker), or None."""
        line = marker_line(marker)
        url: str | None = self._issue_url(f"/{self.target.pull_request}/comments?per_page=100")
        while url:
            resp = self._request("GET", url, "list the pull request's comments", 200)
            for comment in resp.json():
                if line in str(comment.get("body", "")):
                    return comment
            url = resp.links.get("next", {}).get("url")
        return None

    def upsert(self, body: str, marker: str) -> tuple[str, str]:
        """Create the comment, or update ours in place; ("created" | "updated" |
        "unchanged", its URL)."""
        existing = self.find(marker)
        if existing is None:
            url = self._issue_url(f"/{self.target.pull_request}/comments")
            action = "comment on the pull request"
            resp = self._request("POST", url, action, 201, json={"body": body})
            return "created", str(resp.json().get("html_url", ""))
        if existing.get("body") == body:
            return "unchanged", str(existing.get("html_url", ""))
        url = self._issue_url(f"/comments/{existing['id']}")
        resp = self._request("PATCH", url, "update the summary comment", 200, json={"body": body})
        return "updated", str(resp.json().get("html_url", ""))


def target_from(env: Mapping[str, str], api_url: str, repository: str, pr: int) -> Target:
    """The comment target from settings and the GitHub Actions environment."""
    api = api_url or env.get("GITHUB_API_URL", "") or DEFAULT_API
    repo = repository or env.get("GITHUB_REPOSITORY", "")
    if not repo or "/" not in repo:
        raise CommentError(
            "no repository to comment on: set GITHUB_REPOSITORY (owner/name) or "
            "[tool.pipeline.report] repository"
        )
    number = pull_request_number(env, pr)
    if number is None:
        raise CommentError(
            "not a pull request build: no PR number in GITHUB_EVENT_PATH or GITHUB_REF; "
            "set CIPIPE_REPORT__PULL_REQUEST=<n> to comment on one"
        )
    return Target(api, repo, number)
