"""Telling the team. `Notifier` sends one message; `SlackWebhook` posts it to a Slack
incoming webhook (JSON `{"text": ...}`; 5xx, 429 and connection errors retried with a
short bounded backoff); `NoNotifier` is what runs when no webhook is configured: it
says so instead of pretending. A notification that cannot be sent is a warning, never
the deployment's verdict, and its error never quotes the webhook URL (the URL is the
credential)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from deploy.config import Secret


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
        attempts: int = 3,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.attempts = attempts
        self.sleep = sleep

    def describe(self) -> str:
        """The webhook's source, not its URL."""
        return f"Slack incoming webhook from {self.url.source}"

    def send(self, message: Message) -> str | None:
        """POST the message; retry 5xx/429/connection errors up to `attempts` times."""
        import requests

        why = ""
        for attempt in range(1, self.attempts + 1):
            try:
                resp = requests.post(
                    self.url.value, json={"text": message.text()}, timeout=self.timeout
                )
            except requests.RequestException as err:
                why = f"connection failed ({type(err).__name__})"
            else:
                if resp.status_code == 200:
                    return None
                body = resp.text.strip().splitlines()[0][:80] if resp.text.strip() else ""
                why = f"the webhook answered {resp.status_code} {body}".strip()
                if resp.status_code < 500 and resp.status_code != 429:
                    return why  # invalid_token, no_service, ...: retrying cannot help
            if attempt < self.attempts:
                self.sleep(0.5 * attempt)
        return why


def notifier(webhook: Secret | None) -> Notifier:
    """The notifier for a configured webhook (or none)."""
    return SlackWebhook(webhook) if webhook else NoNotifier()
