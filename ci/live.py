"""The live terminal view of `invoke ci` (rich): one row per stage with a spinner while it
runs, its elapsed time against its budget (a bar that turns red past the budget), the
last line it printed, and its verdict when done; a failed stage's last log lines are
printed above the table as it fails. Used only on a terminal outside CI: elsewhere the
executor prints plain lines (ci/progress.py `LineDisplay`).

The display is driven by the executor's calls only (no refresh thread of its own), so
signals, a simulated clock and a closed terminal behave exactly as with plain lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.rule import Rule
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from ci.progress import ICON, TAIL_LINES, Running, last_line, read_lines
from ci.result import StageResult, Status

if TYPE_CHECKING:
    from ci.graph import Step

REFRESH_S = 0.1  # at most ten redraws a second
BAR_WIDTH = 24

_STYLE = {
    Status.PASSED: "green",
    Status.SKIPPED: "cyan",
    Status.FAILED: "red",
    Status.ERROR: "red",
    Status.INTERNAL: "red",
    Status.TIMEOUT: "red",
    Status.BLOCKED: "yellow",
    Status.CANCELLED: "yellow",
}


@dataclass
class _Row:
    step: Step
    state: str = "waiting"  # waiting | running | done
    elapsed: float = 0.0
    last: str = ""
    stopping: str = ""
    result: StageResult | None = None
    spinner: Spinner | None = None


class LiveDisplay:
    """A rich Live table of the planned stages (see module docstring)."""

    def __init__(
        self,
        console: Console,
        steps: Sequence[Step],
        *,
        clock: Callable[[], float] = time.monotonic,
        tail_lines: int = TAIL_LINES,
    ) -> None:
        self.console = console
        self.rows = {s.name: _Row(s) for s in steps}
        self.clock = clock
        self.tail_lines = tail_lines
        self._drawn_at = float("-inf")
        self._closed = False
        self.live = Live(
            console=console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
            transient=False,
        )
        self.live.start()
        self._draw(force=True)

    # -- the executor's calls ----------------------------------------------------------

    def started(self, step: Step, console: Path) -> None:
        """A stage was launched: a spinner starts."""
        row = self.rows.setdefault(step.name, _Row(step))
        row.state, row.spinner = "running", Spinner("dots", style="cyan")
        self._draw(force=True)

    def tick(self, running: Sequence[Running]) -> None:
        """Elapsed times and last lines of the running stages; redrawn at most every
        REFRESH_S."""
        for run in running:
            row = self.rows.get(run.step.name)
            if row is not None:
                row.elapsed, row.stopping = run.elapsed, run.stopping
        if self.clock() - self._drawn_at < REFRESH_S:
            return
        for run in running:
            row = self.rows.get(run.step.name)
            if row is not None:
                row.last = last_line(run.console)
        self._draw(force=True)

    def finished(
        self, step: Step, result: StageResult, elapsed: float, console: Path | None
    ) -> None:
        """A stage's verdict; a failed stage's log tail goes above the table."""
        row = self.rows.setdefault(step.name, _Row(step))
        # The stage's own measure when it has one: the same number as the gate table.
        took = result.duration_s if result.duration_s > 0 else elapsed
        row.state, row.result, row.elapsed, row.spinner = "done", result, took, None
        failed = not result.status.ok and result.status not in (
            Status.CANCELLED,
            Status.BLOCKED,
        )
        if failed and console is not None:
            self._tail(step.name, result, console)
        self._draw(force=True)

    def note(self, text: str) -> None:
        """A line above the table."""
        self.console.print(Text(text), highlight=False)
        self._draw(force=True)

    def close(self) -> None:
        """Draw the final state and release the terminal."""
        if self._closed:
            return
        self._closed = True
        self._draw(force=True)
        self.live.stop()

    # -- rendering ---------------------------------------------------------------------

    def _tail(self, name: str, result: StageResult, console: Path) -> None:
        lines = read_lines(console) or []
        shown = lines[-self.tail_lines :]
        title = f"{name} {result.status.value}: last {len(shown)} of {len(lines)} lines"
        self.console.print(Rule(Text(title, style="bold red"), style="red"))
        for line in shown:
            self.console.print(Text(line), highlight=False, soft_wrap=True)
        self.console.print(Rule(Text(f"full output: {console}", style="dim"), style="red"))

    def _draw(self, *, force: bool = False) -> None:
        if self._closed and not force:
            return
        self._drawn_at = self.clock()
        self.live.update(self.render(), refresh=True)

    def render(self) -> RenderableType:
        """The table as it stands."""
        table = Table.grid(padding=(0, 1))
        name_width = max((len(n) for n in self.rows), default=4)
        widths = (1, name_width, 14, 15, BAR_WIDTH)
        for width in widths:
            table.add_column(no_wrap=True, min_width=width, max_width=width)
        # The last line a stage printed gets what is left; left unbounded, rich would
        # shrink the other columns to make room for it.
        rest = max(8, self.console.width - sum(widths) - len(widths))
        table.add_column(no_wrap=True, overflow="ellipsis", max_width=rest)
        done = sum(r.state == "done" for r in self.rows.values())
        for row in self.rows.values():
            table.add_row(*self._cells(row))
        footer = Text(f"{done}/{len(self.rows)} stages done", style="dim")
        return Group(table, footer)

    def _cells(self, row: _Row) -> list[RenderableType]:
        budget = row.step.budget_s
        timing = Text(f"{row.elapsed:5.1f}s / {budget:.0f}s")
        if row.state == "waiting":
            needs = ", ".join(row.step.waits_for)
            return [
                Text("·", style="dim"),
                Text(row.step.name, style="dim"),
                Text("waiting", style="dim"),
                Text(f"{'':>5}  / {budget:.0f}s", style="dim"),
                Text(""),
                Text(f"after {needs}" if needs else "", style="dim"),
            ]
        over = row.elapsed > budget
        bar = ProgressBar(
            total=max(budget, 0.001),
            completed=min(row.elapsed, budget),
            width=BAR_WIDTH,
            complete_style="red" if over else "cyan",
            finished_style="red" if over else "green",
        )
        if over:
            timing.stylize("red")
        if row.state == "running":
            status = Text("stopping" if row.stopping else "running", style="yellow")
            detail = Text(row.stopping or row.last, style="dim", overflow="ellipsis")
            icon: RenderableType = row.spinner or Text("…")
            return [icon, Text(row.step.name, style="bold"), status, timing, bar, detail]
        result = row.result
        assert result is not None
        style = _STYLE[result.status]
        summary = (result.summary.strip().splitlines() or [""])[0][:100]
        return [
            Text(ICON[result.status], style=style),
            Text(row.step.name, style="bold"),
            Text(result.status.value + (" (cached)" if result.cached else ""), style=style),
            timing,
            bar,
            Text(summary, style="dim", overflow="ellipsis"),
        ]


def make_console(stream: object, *, force: bool = False) -> Console:
    """A rich console writing to `stream` (the masking stdout)."""
    return Console(
        file=stream,  # type: ignore[arg-type]
        force_terminal=True if force else None,
        highlight=False,
        soft_wrap=False,
    )
