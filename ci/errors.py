"""One exception type per kind of failure, each with its own exit code.

Entry points (nox sessions, invoke tasks) catch `PipelineError` once and print
its one-line message; nothing below them prints tracebacks for expected
failures.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class PipelineError(Exception):
    """Base of every expected failure; `str(err)` is the one line shown."""

    exit_code = 2


class ConfigError(PipelineError):
    """A `[tool.pipeline]` value or environment override is malformed."""

    exit_code = 3


class WorkspaceError(PipelineError):
    """The configured workspace is not a usable Cargo workspace."""

    exit_code = 4


class ToolMissing(PipelineError):
    """An external program is not installed; the message says how to get it."""

    exit_code = 5

    def __init__(self, tool: str, hint: str) -> None:
        super().__init__(f"{tool} not found on PATH: {hint}")
        self.tool = tool


class ToolUntrusted(ToolMissing):
    """A downloaded tool is not what the lock file says it is (hash or provenance)."""

    def __init__(self, tool: str, detail: str) -> None:
        PipelineError.__init__(self, f"{tool}: {detail}")
        self.tool = tool


class ServiceError(PipelineError):
    """A backing service (Postgres, Redis, ...) could not be started or never became ready."""

    exit_code = 6


class HistoryError(PipelineError):
    """The history store cannot be used: corrupt or foreign file, schema newer than this
    code, Postgres unreachable, a malformed export. Nothing was overwritten."""

    exit_code = 7


class NoHistoryYet(HistoryError):
    """Opened without `create` and nothing has been recorded there yet."""


class GateFailed(PipelineError):
    """A stage ran and its gate is red (findings, failing tests, thresholds)."""

    exit_code = 1


class Interrupted(PipelineError):
    """The run was interrupted (Ctrl-C / SIGTERM); everything was torn down."""

    exit_code = 130


class BenchError(PipelineError):
    """A benchmark run could not produce a comparison: the base revision does not build
    or run, or a benchmark left missing or partial machine-readable output."""

    exit_code = 8


@contextmanager
def task_errors() -> Iterator[None]:
    """For invoke tasks: an expected failure becomes its one masked line and exit code,
    never a traceback."""
    try:
        yield
    except PipelineError as err:
        import os

        from invoke.exceptions import Exit

        from ci.redact import Redactor, secrets_from_env

        mask = Redactor(secrets_from_env(os.environ))
        raise Exit(mask(f"error: {err}"), code=err.exit_code) from None
