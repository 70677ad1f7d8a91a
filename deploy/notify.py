"""Telling the team. `Notifier` sends one message; `SlackWebhook` posts it to a Slack
incoming webhook (JSON `{"text": ...}`; 5xx, 429 and connection errors retried by the
shared policy of ci/github/retry.py, within a short budget); `NoNotifier` is what runs
when no webhook is configured: it says so instead of pretending. A notification that
cannot be sent is a warning, never the deployment's verdict, and its error never quotes
the webhook URL (the URL is the credential)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ci.github.retry import OK, Backoff, Verdict, retry_after, retrying
from deploy.config import Secret

# A notification must not hold the deployment's verdict up: three tries, half a minute.
NOTIFY_BACKOFF = Backoff(attempts=3, first=0.5, factor=2.0, ceiling=5.0, budget=30.0)


@dataclass(frozen=True)
class Message:
    """A notification: a one-line title and detail lines."""

    title: str
    lines: tuple[str, ...] = ()
    ok: bool = True

    def text(self) -> str:
        """Slack mrkdwn: a bold title with an icon, then the lines."""
        icon = ":white_check_mark:" if self.ok else ":rotating_light:"
        return "\n".join([f"{icon} *{self.title}*", *self.lines])


class Notifier(Protocol):
    """Where notifications go."""

    def describe(self) -> str:
        """Where messages go (never the credential itself)."""
        ...

    def send(self, message: Message) -> str | None:
        """Send; None when delivered, else why not (one line, no credential)."""
        ...


class NoNotifier:
    """No webhook configured: nothing is sent, and the flow says so."""

    def describe(self) -> str:
        """The note shown in the plan."""
        return "skipped: no Slack webhook ($SLACK_WEBHOOK_URL or [staging] webhook_file)"

    def send(self, message: Message) -> str | None:
        """Send nothing."""
        del message
        return "skipped: no webhook configured"


class SlackWebhook:
    """A Slack incoming webhook."""

    def __init__(
        self,
        url: Secret,
        *,
        timeout: float = 10,
        backoff: Backoff = NOTIFY_BACKOFF,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.backoff = backoff
        self.sleep = sleep
        self.clock = clock
        self.rand = rand

    def describe(self) -> str:
        """The webhook's source, not its URL."""
        return f"Slack incoming webhook from {self.url.source}"

    def send(self, message: Message) -> str | None:
        """POST the message through the shared retry policy (5xx, 429 and connection
        errors retried; Slack's Retry-After waited in full within the budget)."""
        import requests

        def post() -> requests.Response:
            return requests.post(
                self.url.value, json={"text": message.text()}, timeout=self.timeout
            )

        stopped: list[str] = []
        try:
            resp = retrying(
                post,
                _classify,
                self.backoff,
                retry_on=(requests.RequestException,),
                sleep=self.sleep,
                clock=self.clock,
                rand=self.rand,
                on_give_up=stopped.append,
            )
        except requests.RequestException as err:
            return f"connection failed ({type(err).__name__})"
        if resp.status_code == 200:
            return None
        body = resp.text.strip().splitlines()[0][:80] if resp.text.strip() else ""
        why = f"the webhook answered {resp.status_code} {body}".strip()
        # invalid_token, no_service, ...: retrying cannot help, so nothing was retried
        return why + "".join(f"; stopped retrying: {s}" for s in stopped)


def _classify(resp: Any) -> Verdict:
    """Slack's overload answers (5xx, 429) are retried, with its Retry-After."""
    status = resp.status_code
    if status >= 500 or status == 429:
        return Verdict(True, str(status), retry_after(resp.headers, time.time()))
    return OK


def notifier(webhook: Secret | None) -> Notifier:
    """The notifier for a configured webhook (or none)."""
    return SlackWebhook(webhook) if webhook else NoNotifier()
