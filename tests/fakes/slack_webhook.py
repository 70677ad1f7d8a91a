"""A local HTTP server speaking the Slack incoming-webhook contract the pipeline uses.

Contract (https://api.slack.com/messaging/webhooks): `POST /services/T…/B…/<secret>` with
a JSON body holding `text`; 200 `ok` when delivered; 404 `no_service` for an unknown
webhook path, 403 `invalid_token` for a revoked one, 400 `invalid_payload` /
`no_text` for a bad body, 429 / 5xx when Slack is overloaded (`fail` injects those).

Used in-process by tests (`with FakeSlack() as slack: ...slack.url...`): `messages` holds
the texts delivered, `log` every request. Standalone for a manual trial:
`python3 tests/fakes/slack_webhook.py` prints the webhook URL to export as
SLACK_WEBHOOK_URL.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `fakes` importable

from fakes.server import LocalServer


@dataclass
class Delivery:
    """One request the server received."""

    path: str
    body: bytes
    status: int


@dataclass
class FakeSlack(LocalServer):
    """The server. `url` is the webhook URL (its last segment is the secret)."""

    secret: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    messages: list[str] = field(default_factory=list)
    log: list[Delivery] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)  # statuses to answer next, in order

    def __post_init__(self) -> None:
        self.path = f"/services/T0PIPELINE/B0STAGING/{self.secret}"
        self._lock = threading.Lock()
        self._listen(self._handler_class())

    @property
    def url(self) -> str:
        return self.base_url + self.path

    def fail(self, *statuses: int) -> None:
        """Answer the next requests with these statuses (e.g. 500, 429), then normally."""
        with self._lock:
            self.failures.extend(statuses)

    def handle(self, path: str, body: bytes) -> tuple[int, str]:
        """Slack's answer to a POST."""
        with self._lock:
            if self.failures:
                status = self.failures.pop(0)
                self.log.append(Delivery(path, body, status))
                return status, "rate_limited" if status == 429 else "internal_error"
            if path != self.path:
                status, text = 404, "no_service"
            else:
                try:
                    payload: Any = json.loads(body)
                except ValueError:
                    payload = None
                if not isinstance(payload, dict):
                    status, text = 400, "invalid_payload"
                elif not str(payload.get("text", "")).strip():
                    status, text = 400, "no_text"
                else:
                    self.messages.append(str(payload["text"]))
                    status, text = 200, "ok"
            self.log.append(Delivery(path, body, status))
            return status, text

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, text = fake.handle(self.path, body)
                payload = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return _Handler


def main() -> None:
    with FakeSlack() as slack:
        print(f"fake Slack webhook: {slack.url}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
