"""Waiting for a service to become healthy: `GET /health` polled with bounded retries
(a deadline and a backoff, never a fixed sleep), stopping at once when the container is
known to be down (crashed, crash-looping), so a binary that exits at start fails in
seconds instead of at the deadline."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Probe:
    """One answer from /health: status code (0: no answer) and a short reason."""

    status: int
    detail: str

    @property
    def healthy(self) -> bool:
        """True for 200."""
        return self.status == 200


@dataclass(frozen=True)
class Health:
    """The outcome of waiting: healthy or not, the last probe, attempts, seconds."""

    healthy: bool
    last: Probe
    attempts: int
    seconds: float
    reason: str = ""

    def describe(self) -> str:
        """One line: `healthy after 3.2s (5 probes)` or why not."""
        if self.healthy:
            return f"healthy after {self.seconds:.1f}s ({self.attempts} probes)"
        return self.reason


def probe_health(url: str, timeout: float) -> Probe:
    """GET `<url>/health` once."""
    import requests

    try:
        resp = requests.get(f"{url}/health", timeout=timeout)
    except requests.RequestException as err:
        return Probe(0, f"no answer ({type(err).__name__})")
    return Probe(resp.status_code, summarize(resp.status_code, resp.text))


def summarize(status: int, body: str) -> str:
    """A short reason from a health answer: the failing checks of its JSON body."""
    try:
        data = json.loads(body)
    except ValueError:
        return f"{status} {body.strip()[:80]}"
    if not isinstance(data, dict):
        return str(status)
    parts = []
    checks = data.get("checks")
    if isinstance(checks, dict):
        for name, check in sorted(checks.items()):
            if isinstance(check, dict) and check.get("status") != "ok":
                parts.append(f"{name}: {check.get('error') or check.get('status')}")
    if data.get("fault_injected"):
        parts.append("fault injected")
    return f"{status} {data.get('status', '')}".strip() + (
        f" ({'; '.join(parts)})" if parts else ""
    )


def wait_healthy(
    probe: Callable[[], Probe],
    *,
    timeout: float,
    down: Callable[[], str | None] = lambda: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    first_delay: float = 0.25,
    max_delay: float = 2.0,
) -> Health:
    """Probe until healthy, `down()` names a reason the service cannot come up, or
    `timeout` seconds pass. The waits grow from `first_delay` to `max_delay`."""
    start = clock()
    deadline = start + timeout
    delay = first_delay
    attempts = 0
    last = Probe(0, "not probed")
    while True:
        attempts += 1
        last = probe()
        if last.healthy:
            return Health(True, last, attempts, clock() - start)
        reason = down()
        if reason:
            return Health(False, last, attempts, clock() - start, reason)
        remaining = deadline - clock()
        if remaining <= 0:
            why = f"/health did not answer 200 within {timeout:g}s: last {last.detail}"
            return Health(False, last, attempts, clock() - start, why)
        sleep(min(delay, remaining))
        delay = min(delay * 2, max_delay)
