"""The live view of a rollout: the step, the weights, each colour's error rate and
p50/p95/p99 against the thresholds, the time left in the bake window. A rich table
redrawn in place on a terminal; one plain line per update otherwise (CI logs), at most
every `every` seconds."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from deploy.rollout.config import Thresholds
from deploy.rollout.metrics import Sample


@dataclass(frozen=True)
class Status:
    """What the view shows."""

    phase: str  # "step 2/3" or "final watch"
    weights: Mapping[str, int]
    new: str
    samples: Mapping[str, Sample | None]
    versions: Mapping[str, str]
    left: float  # seconds left in the window (negative: holding)
    note: str = ""


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _qs(s: Sample | None) -> str:
    if s is None:
        return "-/-/-"
    return f"{_ms(s.p50_ms)}/{_ms(s.p95_ms)}/{_ms(s.p99_ms)}"


def _rate(s: Sample | None) -> str:
    return "-" if s is None or s.error_rate is None else f"{s.error_rate:.1%}"


def line(st: Status, th: Thresholds) -> str:
    """The plain-text form of one update."""
    parts = [f"[{st.phase}]", " ".join(f"{c} {w}%" for c, w in sorted(st.weights.items()))]
    for colour in sorted(st.samples):
        s = st.samples[colour]
        mark = "*" if colour == st.new else ""
        req = "0" if s is None else str(s.requests)
        parts.append(f"{colour}{mark}: {req} req err {_rate(s)} p50/p95/p99 {_qs(s)} ms")
    parts.append(f"limits err {th.error_rate:.0%} p99 {th.p99_ms:g} ms")
    parts.append(f"{st.left:.0f}s left" if st.left >= 0 else f"holding {-st.left:.0f}s")
    if st.note:
        parts.append(st.note)
    return " | ".join(parts)


class View:
    """Plain lines or a rich live table."""

    def __init__(
        self,
        th: Thresholds,
        say: Callable[[str], None],
        *,
        rich: bool | None = None,
        every: float = 5.0,
    ) -> None:
        self.th = th
        self.say = say
        self.every = every
        self.rich = sys.stdout.isatty() if rich is None else rich
        self._last = 0.0
        self._live: Any = None

    def _table(self, st: Status) -> Any:
        from rich.table import Table

        title = f"production rollout: {st.phase}"
        left = f"{st.left:.0f}s left" if st.left >= 0 else f"holding {-st.left:.0f}s"
        table = Table(title=title, caption=f"{left}  {st.note}".strip())
        for head in (
            "colour",
            "version",
            "weight",
            "requests",
            "errors",
            "p50 ms",
            "p95 ms",
            "p99 ms",
        ):
            table.add_column(head, justify="right" if head not in ("colour", "version") else "left")
        for colour in sorted(st.weights):
            s = st.samples.get(colour)
            bad_err = s is not None and (s.error_rate or 0) > self.th.alert_error_rate
            bad_p99 = s is not None and (s.p99_ms or 0) > self.th.alert_p99_ms
            table.add_row(
                f"{colour}{' (new)' if colour == st.new else ''}",
                st.versions.get(colour, ""),
                f"{st.weights[colour]}%",
                "0" if s is None else str(s.requests),
                f"[red]{_rate(s)}[/red]" if bad_err else _rate(s),
                _ms(s.p50_ms if s else None),
                _ms(s.p95_ms if s else None),
                f"[red]{_ms(s.p99_ms if s else None)}[/red]"
                if bad_p99
                else _ms(s.p99_ms if s else None),
            )
        table.add_row(
            "limit", "", "", "", f"{self.th.error_rate:.0%}", "", "", f"{self.th.p99_ms:g}"
        )
        return table

    def update(self, st: Status) -> None:
        """Show `st` (plain mode: only every `every` seconds, unless noted)."""
        if self.rich:
            from rich.live import Live

            if self._live is None:
                self._live = Live(self._table(st), refresh_per_second=4, transient=False)
                self._live.start()
            else:
                self._live.update(self._table(st))
            return
        now = time.monotonic()
        if st.note or now - self._last >= self.every:
            self._last = now
            self.say(line(st, self.th))

    def close(self) -> None:
        """Stop redrawing."""
        if self._live is not None:
            self._live.stop()
            self._live = None
