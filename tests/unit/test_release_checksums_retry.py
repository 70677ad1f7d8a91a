"""SHA256SUMS format and the retry/backoff policy (injected clock and sleep)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci.github.retry import Backoff, Verdict, retrying
from ci.release.checksums import format_sums, merge, parse_sums, sha256_bytes, sha256_file
from ci.release.errors import PublishError

A = "a" * 64
B = "B" * 64


def test_sums_lines_are_sha256sum_format_sorted_by_name() -> None:
    text = format_sums({"z.zip": A, "a.tar.gz": B})
    assert text == f"{'b' * 64}  a.tar.gz\n{A}  z.zip\n"


def test_sums_round_trip_and_binary_mode_lines_parse() -> None:
    assert parse_sums(format_sums({"x.tar.gz": A})) == {"x.tar.gz": A}
    assert parse_sums(f"{A} *x.zip\n\n") == {"x.zip": A}


def test_sums_refuse_paths_and_malformed_lines() -> None:
    with pytest.raises(ValueError):
        format_sums({"dist/x.tar.gz": A})
    with pytest.raises(PublishError, match="SHA256SUMS line 2 is not '<sha256>  <name>'"):
        parse_sums(f"{A}  ok\nnot a checksum line\n")


def test_merge_keeps_other_targets_and_replaces_ours() -> None:
    theirs = {"linux.tar.gz": A, "mac.tar.gz": A}
    assert merge(theirs, {"mac.tar.gz": B, "win.zip": B}) == {
        "linux.tar.gz": A,
        "mac.tar.gz": B,
        "win.zip": B,
    }


def test_file_digest_matches_bytes_digest(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x" * (3 << 20))
    assert sha256_file(f) == sha256_bytes(b"x" * (3 << 20))


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _flaky(results: list):
    calls = []

    def action():
        calls.append(1)
        item = results[len(calls) - 1]
        if isinstance(item, Exception):
            raise item
        return item

    return action, calls


def _transient(status: int) -> Verdict:
    return Verdict(status >= 500, f"{status}")


def test_backoff_doubles_up_to_the_ceiling_and_honours_longer_hints() -> None:
    b = Backoff(attempts=6, first=1, factor=2, ceiling=5)
    assert [b.delay(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]
    assert b.delay(1, hint=3) == 3
    assert b.delay(1, hint=60) == 5  # Retry-After never waits past the ceiling
    assert b.delay(3, hint=0.5) == 4


def test_retries_transient_failures_then_returns_the_success() -> None:
    t = FakeTime()
    action, calls = _flaky([502, 503, 201])
    told = []
    result = retrying(
        action,
        _transient,
        Backoff(attempts=4, first=1),
        sleep=t.sleep,
        clock=t.clock,
        on_retry=lambda why, wait, n: told.append((why, wait, n)),
    )
    assert result == 201 and len(calls) == 3
    assert t.slept == [1, 2]
    assert told == [("502", 1, 2), ("503", 2, 3)]


def test_gives_up_after_the_attempts_and_returns_the_last_answer() -> None:
    t = FakeTime()
    action, calls = _flaky([500, 500, 500, 201])
    assert retrying(action, _transient, Backoff(attempts=3), sleep=t.sleep, clock=t.clock) == 500
    assert len(calls) == 3 and len(t.slept) == 2


def test_client_errors_are_not_retried() -> None:
    t = FakeTime()
    action, calls = _flaky([404, 201])
    assert retrying(action, _transient, Backoff(), sleep=t.sleep, clock=t.clock) == 404
    assert len(calls) == 1 and t.slept == []


def test_no_retry_starts_past_the_budget() -> None:
    t = FakeTime()
    action, calls = _flaky([502] * 10)
    backoff = Backoff(attempts=10, first=4, factor=2, ceiling=100, budget=10)
    assert retrying(action, _transient, backoff, sleep=t.sleep, clock=t.clock) == 502
    assert t.slept == [4]  # the next wait (8s) would end past 10s
    assert len(calls) == 2


def test_listed_exceptions_are_retried_then_reraised() -> None:
    t = FakeTime()
    action, calls = _flaky([ConnectionError("reset"), 201])
    got = retrying(
        action, _transient, Backoff(), retry_on=(ConnectionError,), sleep=t.sleep, clock=t.clock
    )
    assert got == 201
    action, calls = _flaky([ConnectionError("down")] * 3)
    with pytest.raises(ConnectionError, match="down"):
        retrying(
            action,
            _transient,
            Backoff(attempts=3),
            retry_on=(ConnectionError,),
            sleep=t.sleep,
            clock=t.clock,
        )
    assert len(calls) == 3
    action, calls = _flaky([KeyError("bug")])
    with pytest.raises(KeyError):  # not listed: never retried
        retrying(action, _transient, Backoff(), retry_on=(ConnectionError,), sleep=t.sleep)
