"""The shared retry policy (ci/github/retry.py) and how GitHub's and Slack's answers feed it:
jitter, Retry-After waited in full within the budget, GitHub's secondary rate limit."""

from __future__ import annotations

import json
import random
from email.utils import formatdate
from secrets import token_hex
from typing import Any

import pytest
import requests

from ci.github.client import GitHub, GitHubError, classify
from ci.github.retry import Backoff, Verdict, retry_after, retrying
from deploy import notify
from deploy.config import Secret

NOW = 1_800_000_000.0  # the server's clock in these answers (its Date header)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _response(
    status: int, body: object = None, headers: dict[str, str] | None = None
) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp.reason = {403: "Forbidden", 429: "Too Many Requests"}.get(status, "")
    resp._content = json.dumps(body).encode() if body is not None else b""
    resp.headers.update({"Date": formatdate(NOW, usegmt=True), **(headers or {})})
    return resp


def _answers(*items: Any):
    calls: list[int] = []

    def action() -> Any:
        calls.append(1)
        return items[len(calls) - 1]

    return action, calls


def _hinted(item: tuple[int, float | None]) -> Verdict:
    status, hint = item
    return Verdict(status >= 429, str(status), hint)


# --- the policy --------------------------------------------------------------------------


def test_retry_after_longer_than_the_ceiling_is_waited_in_full() -> None:
    backoff = Backoff(ceiling=30, budget=300, jitter=0)
    assert backoff.delay(1, hint=120) == 120  # the ceiling bounds our backoff, not the server
    t = FakeTime()
    action, calls = _answers((429, 120.0), (200, None))
    assert retrying(action, _hinted, backoff, sleep=t.sleep, clock=t.clock) == (200, None)
    assert t.slept == [120] and len(calls) == 2


def test_a_wait_the_budget_cannot_cover_stops_at_once_and_says_why() -> None:
    t = FakeTime()
    told: list[str] = []
    action, calls = _answers((429, 600.0), (200, None))
    backoff = Backoff(budget=300, jitter=0)
    got = retrying(action, _hinted, backoff, sleep=t.sleep, clock=t.clock, on_give_up=told.append)
    assert got == (429, 600.0) and len(calls) == 1 and t.slept == []  # no early retry
    assert told == [
        "429: the server asks to wait 600s, more than the 300s left of the 300s retry budget"
    ]


def test_running_out_of_attempts_is_said_too() -> None:
    t = FakeTime()
    told: list[str] = []
    action, _ = _answers(*[(503, None)] * 3)
    backoff = Backoff(attempts=3, jitter=0)
    retrying(action, _hinted, backoff, sleep=t.sleep, clock=t.clock, on_give_up=told.append)
    assert told == ["503: still failing after 3 attempts"]


def test_jitter_spreads_our_backoff_and_never_shortens_the_servers_wait() -> None:
    backoff = Backoff(first=4, factor=2, ceiling=100, jitter=0.5)
    assert backoff.delay(1, rand=lambda: 0.0) == 4
    assert backoff.delay(1, rand=lambda: 1.0) == 2  # at most half of the step taken off
    assert backoff.delay(2, rand=lambda: 1.0) == 4
    draws = [backoff.delay(3, rand=random.random) for _ in range(200)]
    assert all(8 <= d <= 16 for d in draws) and len(set(draws)) > 100
    hinted = [backoff.delay(1, hint=10, rand=random.random) for _ in range(200)]
    assert all(10 <= d <= 12 for d in hinted) and len(set(hinted)) > 100


def test_the_injected_random_reaches_the_waits() -> None:
    t = FakeTime()
    action, _ = _answers((503, None), (503, None), (200, None))
    backoff = Backoff(first=2, factor=2, jitter=0.5)
    retrying(action, _hinted, backoff, sleep=t.sleep, clock=t.clock, rand=lambda: 1.0)
    assert t.slept == [1, 2]


# --- the schedule ----------------------------------------------------------------------


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
    b = Backoff(attempts=6, first=1, factor=2, ceiling=5, jitter=0)
    assert [b.delay(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]
    assert b.delay(1, hint=3) == 3
    assert b.delay(1, hint=60) == 60  # the server's wait is honoured past our ceiling
    assert b.delay(3, hint=0.5) == 0.5  # ... and not lengthened to our schedule


def test_retries_transient_failures_then_returns_the_success() -> None:
    t = FakeTime()
    action, calls = _flaky([502, 503, 201])
    told = []
    result = retrying(
        action,
        _transient,
        Backoff(attempts=4, first=1, jitter=0),
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
    backoff = Backoff(attempts=10, first=4, factor=2, ceiling=100, budget=10, jitter=0)
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


# --- what GitHub's answers mean ------------------------------------------------------------


def test_retry_after_is_read_in_seconds_and_as_an_http_date() -> None:
    assert retry_after({"Retry-After": "7"}, NOW) == 7
    assert retry_after({"retry-after": formatdate(NOW + 90, usegmt=True)}, NOW) == 90
    assert retry_after({"Retry-After": formatdate(NOW - 5, usegmt=True)}, NOW) == 0
    assert retry_after({"Retry-After": "soon"}, NOW) is None
    assert retry_after({}, NOW) is None


@pytest.mark.parametrize(
    ("status", "body", "headers", "hint"),
    [
        # secondary rate limit with retry-after: that many seconds
        (403, {"message": "You have exceeded a secondary rate limit"}, {"retry-after": "45"}, 45),
        # primary limit used up: until X-RateLimit-Reset (epoch seconds, the server's clock)
        (
            403,
            {"message": "API rate limit exceeded"},
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 90)},
            90,
        ),
        (429, {}, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 30)}, 30),
        # secondary rate limit without headers: GitHub says wait at least a minute
        (403, {"message": "You have exceeded a secondary rate limit."}, {}, 60),
        (429, {"message": "slow down"}, {}, 60),
        (502, None, {}, None),
        (503, None, {"Retry-After": "3"}, 3),
    ],
)
def test_rate_limits_and_server_errors_are_retried_with_the_wait_github_asks(
    status: int, body: object, headers: dict[str, str], hint: float | None
) -> None:
    verdict = classify(_response(status, body, headers))
    assert verdict.retry and verdict.hint == hint


def test_a_plain_403_is_a_permission_problem_never_retried() -> None:
    assert not classify(_response(403, {"message": "Resource not accessible by integration"})).retry
    assert not classify(_response(404)).retry


class _Session(requests.Session):
    def __init__(self, *answers: requests.Response) -> None:
        super().__init__()
        self.answers = list(answers)
        self.sent = 0

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.sent += 1
        return self.answers.pop(0)


def _client(session: _Session, t: FakeTime, said: list[str]) -> GitHub:
    return GitHub(
        "https://api.example",
        "acme/trading",
        "ghs_" + token_hex(8),
        backoff=Backoff(attempts=4, first=1, budget=300, jitter=0),
        say=said.append,
        sleep=t.sleep,
        clock=t.clock,
        session=session,
    )


def test_the_client_waits_out_a_secondary_rate_limit_then_succeeds() -> None:
    t, said = FakeTime(), []
    limited = _response(403, {"message": "secondary rate limit"}, {"Retry-After": "75"})
    session = _Session(limited, _response(201, {"id": 1}))
    resp = _client(session, t, said).request("POST", "https://api.example/x", "create x", ok=(201,))
    assert resp.status_code == 201 and session.sent == 2
    assert t.slept == [75]
    assert said == ["github: 403 Forbidden on POST /x; attempt 2/4 in 75.0s"]


def test_the_client_says_when_the_reset_is_beyond_the_budget() -> None:
    t, said = FakeTime(), []
    reset = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 3600)}
    session = _Session(_response(403, {"message": "API rate limit exceeded"}, reset))
    with pytest.raises(GitHubError) as err:
        _client(session, t, said).request("GET", "https://api.example/x", "read x")
    assert session.sent == 1 and t.slept == []
    line = str(err.value)
    assert "rate limit exhausted" in line
    assert "asks to wait 3600s, more than the 300s left of the 300s retry budget" in line


# --- Slack goes through the same policy -----------------------------------------------------


class Resp:
    def __init__(self, status: int, text: str = "", headers: dict[str, str] | None = None):
        self.status_code, self.text, self.headers = status, text, headers or {}


def _hook(monkeypatch: pytest.MonkeyPatch, *answers: Resp) -> tuple[notify.SlackWebhook, FakeTime]:
    pending = list(answers)
    monkeypatch.setattr(requests, "post", lambda *a, **k: pending.pop(0))
    t = FakeTime()
    url = Secret(f"https://hooks.example/services/T1/B2/{token_hex(10)}", "$SLACK_WEBHOOK_URL")
    hook = notify.SlackWebhook(url, sleep=t.sleep, clock=t.clock, rand=lambda: 0.0)
    return hook, t


def test_slack_rate_limit_waits_what_slack_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    hook, t = _hook(monkeypatch, Resp(429, "rate_limited", {"Retry-After": "4"}), Resp(200, "ok"))
    assert hook.send(notify.Message("deployed")) is None
    assert t.slept == [4]


def test_slack_asking_for_longer_than_the_budget_is_reported_not_waited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook, t = _hook(monkeypatch, Resp(429, "rate_limited", {"Retry-After": "600"}))
    problem = hook.send(notify.Message("deployed")) or ""
    assert t.slept == []
    assert problem.startswith("the webhook answered 429 rate_limited")
    assert "asks to wait 600s" in problem
