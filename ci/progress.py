"""What `invoke ci` shows while it runs: the small interface the executor calls (`Display`)
and the plain line display (`LineDisplay`), used when stdout is not a terminal and in CI.
The live terminal display (rich) is in ci/live.py.

The executor tells a display four things: a stage started, the stages still running (on
every poll, with their elapsed time), a stage ended (with its result and console file),
and free-text notes (signals, fail-fast). It never formats output itself, so the executor
is tested with a recording display and a simulated clock.

Under GitHub Actions the line display prints every stage's buffered output inside a
collapsible `::group::` when the stage ends (collapsed in the log, passing stages too),
and a failed stage's last lines again after the group, where the cause is in view. Groups
cannot nest on GitHub, so a stage's own `::group::` lines become plain headers inside
its group; the tail is printed with workflow commands switched off (`::stop-commands::`),
so an `::error` annotation in it is not filed twice.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ci.console import Writer
from ci.result import StageResult, Status

if TYPE_CHECKING:
    from ci.graph import Step

HEARTBEAT_S = 15.0
TAIL_LINES = 20

ICON = {
    Status.PASSED: "✔",
    Status.FAILED: "✘",
    Status.ERROR: "✘",
    Status.TIMEOUT: "⏱",
    Status.INTERNAL: "✘",
    Status.SKIPPED: "○",
    Status.BLOCKED: "⊘",
    Status.CANCELLED: "■",
}


@dataclass(frozen=True)
class Running:
    """A running stage as a display sees it."""

    step: Step
    elapsed: float
    console: Path
    stopping: str = ""  # why it is being stopped ("" = it is not)


class Display(Protocol):
    """Where the executor's progress goes."""

    def started(self, step: Step, console: Path) -> None:
        """`step` was launched; its output goes to `console`."""
        ...

    def tick(self, running: Sequence[Running]) -> None:
        """Called on every poll with the stages still running."""
        ...

    def finished(
        self, step: Step, result: StageResult, elapsed: float, console: Path | None
    ) -> None:
        """`step` ended (console None: it never ran, e.g. blocked)."""
        ...

    def note(self, text: str) -> None:
        """A line of its own (signals, fail-fast, kills)."""
        ...

    def close(self) -> None:
        """The run is over: leave the terminal in a clean state."""
        ...


def last_line(path: Path) -> str:
    """The last non-empty line a running stage printed (progress for the heartbeat)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 2048))
            lines = [x.strip() for x in fh.read().decode(errors="replace").splitlines()]
    except OSError:
        return ""
    line = next((x for x in reversed(lines) if x), "")
    return line[:120]


def read_lines(path: Path) -> list[str] | None:
    """A console file's lines, or None when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None


def ungroup(line: str) -> str | None:
    """A stage's own group markers inside the executor's group: `::group::x` becomes a
    header, `::endgroup::` disappears (GitHub groups do not nest)."""
    stripped = line.lstrip()
    if stripped.startswith("::group::"):
        return "── " + stripped[len("::group::") :]
    if stripped.startswith("::endgroup::"):
        return None
    return line


class LineDisplay:
    """Plain lines: one when a stage starts and ends, a heartbeat every 15 s, a failed
    stage's output. A closed reader (`invoke ci | head`) makes it quiet, never raises."""

    def __init__(
        self,
        stream: Writer | None,
        *,
        github: bool = False,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.stream = stream
        self.github = github
        self.redact = redact or (lambda text: text)
        self._beats: dict[str, float] = {}

    def say(self, text: str) -> None:
        """One masked line; a closed terminal makes the display quiet."""
        if self.stream is None:
            return
        try:
            self.stream.write(self.redact(text) + "\n")
            self.stream.flush()
        except (BrokenPipeError, ValueError, OSError):
            self.stream = None

    note = say

    def started(self, step: Step, console: Path) -> None:
        limit = f", hard limit {step.limit_s:.0f}s" if step.limit_s else ""
        self._beats[step.name] = 0.0
        self.say(f"▶ {step.name} started (budget {step.budget_s:.0f}s{limit})")

    def tick(self, running: Sequence[Running]) -> None:
        for run in running:
            if run.stopping:
                continue
            last = self._beats.get(run.step.name, 0.0)
            if run.elapsed - last < HEARTBEAT_S:
                continue
            self._beats[run.step.name] = run.elapsed
            over = " — over budget" if run.elapsed > run.step.budget_s else ""
            line = last_line(run.console)
            self.say(
                f"… {run.step.name} running {run.elapsed:.0f}s / {run.step.budget_s:.0f}s"
                f"{over}" + (f": {line}" if line else "")
            )

    def finished(
        self, step: Step, result: StageResult, elapsed: float, console: Path | None
    ) -> None:
        icon = ICON[result.status]
        if result.cached:
            self.say(
                f"{icon} {step.name} {result.status.value} (cached: the run of "
                f"{result.cached.get('at', '?')}, inputs unchanged)"
            )
            return
        if console is None:
            self.say(f"{icon} {step.name} {result.status.value}: {result.summary}")
            return
        self.say(f"{icon} {step.name} {result.status.value} in {elapsed:.1f}s")
        failed = not result.status.ok and result.status is not Status.CANCELLED
        if self.github:
            self._grouped(step, result, elapsed, console, failed)
        elif failed:
            lines = read_lines(console)
            if lines is None:
                return
            self.say(f"──── {step.name} output ────")
            for line in lines:
                self.say(line)
            self.say(f"──── end of {step.name} output ────")

    def _grouped(
        self, step: Step, result: StageResult, elapsed: float, console: Path, failed: bool
    ) -> None:
        lines = read_lines(console)
        if lines is None:
            return
        self.say(
            f"::group::{step.name} output ({len(lines)} lines): "
            f"{result.status.value} in {elapsed:.1f}s"
        )
        for line in lines:
            shown = ungroup(line)
            if shown is not None:
                self.say(shown)
        self.say("::endgroup::")
        if not failed:
            return
        self.say(f"── last lines of {step.name} ──")
        token = secrets.token_hex(8)
        self.say(f"::stop-commands::{token}")
        for line in lines[-TAIL_LINES:]:
            self.say(line)
        self.say(f"::{token}::")

    def close(self) -> None:
        return None
