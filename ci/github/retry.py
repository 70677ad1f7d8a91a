"""Bounded retries with exponential backoff. The clock and the sleep are injected, so
the policy is unit-tested without waiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

R = TypeVar("R")


@dataclass(frozen=True)
class Backoff:
    """`attempts` tries in all; the n-th retry waits `first * factor**(n-1)` seconds (or
    the server's Retry-After when longer), never more than `ceiling`; no retry starts
    once `budget` seconds have passed since the first try."""

    attempts: int = 4
    first: float = 1.0
    factor: float = 2.0
    ceiling: float = 30.0
    budget: float = 300.0

    def delay(self, retry: int, hint: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        wait = self.first * self.factor ** (retry - 1)
        if hint is not None and hint > wait:
            wait = hint
        return max(0.0, min(wait, self.ceiling))


@dataclass(frozen=True)
class Verdict:
    """What to do with one outcome: retry it (`why` says why), and a server delay hint."""

    retry: bool
    why: str = ""
    hint: float | None = None


OK = Verdict(False)


def retrying(
    action: Callable[[], R],
    classify: Callable[[R], Verdict],
    backoff: Backoff,
    *,
    retry_on: tuple[type[Exception], ...] = (),
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_retry: Callable[[str, float, int], None] | None = None,
) -> R:
    """Call `action` until `classify` accepts its result or the attempts or the budget
    run out. Exceptions of `retry_on` count as transient too. When retrying stops, the
    last result is returned (the caller explains it) or the last exception re-raised.
    `on_retry(why, delay, next_attempt)` is told before each wait."""
    start = clock()
    attempt = 1
    while True:
        try:
            result = action()
        except retry_on as err:
            verdict = Verdict(True, f"{type(err).__name__}: {err}")
            if not _again(backoff, verdict, attempt, start, clock, sleep, on_retry):
                raise
        else:
            verdict = classify(result)
            if not verdict.retry or not _again(
                backoff, verdict, attempt, start, clock, sleep, on_retry
            ):
                return result
        attempt += 1


def _again(
    backoff: Backoff,
    verdict: Verdict,
    attempt: int,
    start: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    on_retry: Callable[[str, float, int], None] | None,
) -> bool:
    """Wait and return True when another attempt is allowed."""
    if attempt >= backoff.attempts:
        return False
    wait = backoff.delay(attempt, verdict.hint)
    if clock() + wait - start > backoff.budget:
        return False
    if on_retry is not None:
        on_retry(verdict.why, wait, attempt + 1)
    sleep(wait)
    return True
