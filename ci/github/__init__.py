"""The shared GitHub REST client and the retry policy every network call of the pipeline
uses (releases, the PR comment, Codecov, deployments, notifications)."""

from ci.github.client import DEFAULT_API, GitHub, GitHubError, classify, explain
from ci.github.retry import Backoff, Verdict, retrying

__all__ = [
    "DEFAULT_API",
    "Backoff",
    "GitHub",
    "GitHubError",
    "Verdict",
    "classify",
    "explain",
    "retrying",
]
