"""Signals in a process that must always tear down what it started.

The first SIGINT or SIGTERM becomes a KeyboardInterrupt, so `finally` blocks and context
managers stop services and child processes; SIGALRM (the stage's hard time limit) becomes
a `StageTimeout`. Later signals are noted and ignored: GitHub Actions sends SIGTERM a few
seconds after SIGINT, and that second signal must not cut the teardown short.

Code that must not be interrupted half-way (stopping services, killing a child's process
group) runs under `shield()`: a signal arriving there is deferred until the block ends.
Outside a stage process (library use, tests) no policy is installed and `shield()` does
nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from types import FrameType
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)


class StageTimeout(BaseException):
    """The stage reached its hard time limit (raised from SIGALRM). A BaseException, like
    KeyboardInterrupt, so no `except Exception` in a stage can swallow it."""


class Interrupts:
    """The signal policy of one stage process; use as a context manager around the stage."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.raised: BaseException | None = None
        self._pending: BaseException | None = None
        self._depth = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Interrupts:
        global _active
        for signum in _SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        _active = self
        return self

    def __exit__(self, *exc: object) -> None:
        global _active
        signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        _active = None

    def deadline(self, seconds: float) -> None:
        """Raise StageTimeout in `seconds` (0 disarms)."""
        signal.setitimer(signal.ITIMER_REAL, max(0.0, seconds))

    @property
    def timed_out(self) -> bool:
        """True when the hard limit fired (even while shielded)."""
        return isinstance(self.raised or self._pending, StageTimeout)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.received.append(name)
        if self.raised is not None or self._pending is not None:
            _note(f"{name} received while tearing down: ignored, teardown continues\n")
            return
        exc: BaseException = (
            StageTimeout(name) if signum == signal.SIGALRM else KeyboardInterrupt(name)
        )
        if self._depth:
            self._pending = exc
            return
        self.raised = exc
        raise exc

    @contextlib.contextmanager
    def shield(self) -> Iterator[None]:
        """Defer signals until the block ends (then raise the first one, if any)."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if not self._depth and self._pending is not None and self.raised is None:
                exc, self._pending = self._pending, None
                self.raised = exc
                raise exc


_active: Interrupts | None = None


@contextlib.contextmanager
def shield() -> Iterator[None]:
    """Defer SIGINT/SIGTERM/timeouts around teardown code (no-op outside a stage)."""
    if _active is None:
        yield
        return
    with _active.shield():
        yield


def _note(text: str) -> None:
    """Write from a signal handler without taking any lock a stream might hold."""
    with contextlib.suppress(OSError):
        os.write(2, text.encode())
