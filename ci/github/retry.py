"""Bounded retries with exponential backoff and jitter: the one retry policy of the
pipeline (GitHub, Codecov, Slack). The clock, the sleep and the random source are
injected, so the policy is unit-tested without waiting.

A server's own wait (Retry-After, a rate limit's reset time) is honoured in full: never
retried earlier, never cut to our ceiling. Only the overall budget bounds it, and when the
budget cannot cover the wait, retrying stops at once and says so (`on_give_up`) instead of
knocking early on a door that is shut.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar

R = TypeVar("R")


@dataclass(frozen=True)
class Backoff:
    """`attempts` tries in all; the n-th retry waits `first * factor**(n-1)` seconds,
    never more than `ceiling`, less up to `jitter` of it at random (so that clients failing
    together do not come back together). A server hint is waited in full, plus up to
    `jitter * first` seconds. No retry starts that would end past `budget` seconds since
    the first try."""

    attempts: int = 4
    first: float = 1.0
    factor: float = 2.0
    ceiling: float = 30.0
    budget: float = 300.0
    jitter: float = 0.5  # 0: exact waits

    def delay(
        self, retry: int, hint: float | None = None, rand: Callable[[], float] = random.random
    ) -> float:
        """Seconds to wait before retry number `retry` (1-based); `rand` draws from [0, 1)."""
        if hint is not None:
            return max(0.0, hint) + self.jitter * self.first * rand()
        step = max(0.0, min(self.first * self.factor ** (retry - 1), self.ceiling))
        return step * (1.0 - self.jitter * rand())


@dataclass(frozen=True)
class Verdict:
    """What to do with one outcome: retry it (`why` says why), and the server's wait."""

    retry: bool
    why: str = ""
    hint: float | None = None


OK = Verdict(False)


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date, RFC 9110);
    None when absent or unreadable. `now` is the epoch time the date is measured from."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - now)


def retrying(
    action: Callable[[], R],
    classify: Callable[[R], Verdict],
    backoff: Backoff,
    *,
    retry_on: tuple[type[Exception], ...] = (),
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rand: Callable[[], float] = random.random,
    on_retry: Callable[[str, float, int], None] | None = None,
    on_give_up: Callable[[str], None] | None = None,
) -> R:
    """Call `action` until `classify` accepts its result or the attempts or the budget
    run out. Exceptions of `retry_on` count as transient too. When retrying stops, the
    last result is returned (the caller explains it) or the last exception re-raised.
    `on_retry(why, delay, next_attempt)` is told before each wait; `on_give_up(line)` why
    a retryable outcome was not retried."""
    start = clock()
    attempt = 1
    while True:
        try:
            result = action()
        except retry_on as err:
            verdict = Verdict(True, f"{type(err).__name__}: {err}")
            if not _again(
                backoff, verdict, attempt, start, clock, sleep, rand, on_retry, on_give_up
            ):
                raise
        else:
            verdict = classify(result)
            if not verdict.retry or not _again(
                backoff, verdict, attempt, start, clock, sleep, rand, on_retry, on_give_up
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
    rand: Callable[[], float],
    on_retry: Callable[[str, float, int], None] | None,
    on_give_up: Callable[[str], None] | None,
) -> bool:
    """Wait and return True when another attempt is allowed; else say why not."""
    stop = ""
    wait = backoff.delay(attempt, verdict.hint, rand)
    left = backoff.budget - (clock() - start)
    if attempt >= backoff.attempts:
        stop = f"{verdict.why}: still failing after {backoff.attempts} attempts"
    elif wait > left:
        what = (
            f"the server asks to wait {verdict.hint:.0f}s"
            if verdict.hint is not None
            else f"the next wait is {wait:.0f}s"
        )
        stop = (
            f"{verdict.why}: {what}, more than the {max(0.0, left):.0f}s left of the "
            f"{backoff.budget:.0f}s retry budget"
        )
    if stop:
        if on_give_up is not None:
            on_give_up(stop)
        return False
    if on_retry is not None:
        on_retry(verdict.why, wait, attempt + 1)
    sleep(wait)
    return True
