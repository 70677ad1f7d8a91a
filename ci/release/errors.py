"""The release flow's failures, each with its own exit code (ci.errors uses 1-6 and 130)."""

from __future__ import annotations

from ci.errors import PipelineError


class PreconditionFailed(PipelineError):
    """The release cannot start: bad tag, version mismatch, dirty tree, no token, ...

    Raised before anything is built or written."""

    exit_code = 10


class BuildFailed(PipelineError):
    """The release build, the strip check or the packaging failed."""

    exit_code = 11


class PublishError(PipelineError):
    """The GitHub API refused a request or kept failing after retries."""

    exit_code = 12


class VerifyFailed(PipelineError):
    """The published release does not match the local assets after publishing."""

    exit_code = 13
