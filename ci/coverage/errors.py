"""The coverage stage's own failure kind (ci.errors uses 1-7 and 130, releases 10-13)."""

from __future__ import annotations

from ci.errors import PipelineError


class ReportError(PipelineError):
    """A coverage report cannot be used: missing, empty, not XML, not Cobertura, or
    without a single coverable line. The message names the file and what is wrong."""

    exit_code = 20
