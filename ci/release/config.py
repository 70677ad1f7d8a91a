"""The release flow's configuration: `[tool.pipeline.release]` plus the environment GitHub
Actions provides (`GITHUB_TOKEN`, `GITHUB_REPOSITORY`, `GITHUB_API_URL`), read once."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ci.github.client import DEFAULT_API
from ci.github.retry import Backoff
from ci.release.build import STRIP_CHOICES
from ci.settings import Settings

TOKEN_ENV = "GITHUB_TOKEN"
REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Options:
    """The command line of `invoke release`."""

    tag: str
    dry_run: bool = False
    target: str | None = None
    allow_dirty: bool = False
    publish: bool = True
    # A build of a main commit for staging (never published): the version is the crate's
    # with a `-main.g<commit>` pre-release part, so it cannot pass for a release.
    snapshot: bool = False


@dataclass(frozen=True)
class ReleaseConfig:
    """Settings of the release flow; the token itself is kept out of repr."""

    binary: str
    api_url: str
    repository: str | None
    strip: str
    conflict: str
    backoff: Backoff
    timeout: float
    install_tools: bool
    source_date_epoch: str | None
    token: str | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> ReleaseConfig:
        """Read `[tool.pipeline.release]` and the GitHub variables of `settings.env`."""
        sec = settings.section("release")
        env = settings.env
        attempts = sec.whole("attempts", minimum=1)
        return cls(
            binary=settings.top.text("binary"),
            api_url=(sec.text("api_url").strip() or env.get("GITHUB_API_URL") or DEFAULT_API),
            repository=(sec.text("repository").strip() or env.get("GITHUB_REPOSITORY") or None),
            strip=sec.choice("strip", STRIP_CHOICES),
            conflict=sec.choice("asset_conflict", ("refuse", "replace")),
            backoff=Backoff(
                attempts=attempts,
                first=sec.number("backoff", minimum=0),
                ceiling=sec.number("backoff_max", minimum=0),
                budget=sec.number("retry_budget", minimum=0),
            ),
            timeout=sec.number("request_timeout", minimum=1),
            install_tools=settings.top.flag("install_tools"),
            source_date_epoch=env.get("SOURCE_DATE_EPOCH"),
            token=env.get(TOKEN_ENV) or None,
        )

    def publish_problems(self) -> list[str]:
        """Why publishing cannot start (one line each, with the fix)."""
        problems = []
        if not self.token:
            problems.append(
                f"{TOKEN_ENV} is not set: export a token with 'contents: write' on the "
                "repository to publish, or pass --no-publish"
            )
        if not self.repository:
            problems.append(
                "no repository to publish to: set GITHUB_REPOSITORY=owner/name "
                "(or [tool.pipeline.release] repository), or pass --no-publish"
            )
        elif not REPOSITORY.match(self.repository):
            problems.append(
                f"repository {self.repository!r} is not owner/name: fix GITHUB_REPOSITORY "
                "or [tool.pipeline.release] repository"
            )
        return problems
