"""The reports' own failures, each with its exit code (beside ci/errors.py's)."""

from __future__ import annotations

from ci.errors import PipelineError


class ReportError(PipelineError):
    """Nothing to report yet, or a result file that cannot be read: nothing was
    written or overwritten."""

    exit_code = 30


class CommentError(PipelineError):
    """The PR comment could not be posted (no token, no pull request, GitHub refused)."""

    exit_code = 31
