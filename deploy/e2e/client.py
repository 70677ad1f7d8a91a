"""A small client of the service's HTTP API for the suite: one requests session, the base
URL, a timeout on every call, and the routes by name."""

from __future__ import annotations

import time
from typing import Any

import requests


class Api:
    """The service at `base` (no trailing slash)."""

    def __init__(self, base: str, timeout: float) -> None:
        self.base = base.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def get(self, path: str) -> requests.Response:
        return self.session.get(self.base + path, timeout=self.timeout)

    def post(self, path: str, body: Any = None, data: bytes | None = None) -> requests.Response:
        if data is not None:
            headers = {"Content-Type": "application/json"}
            return self.session.post(
                self.base + path, data=data, headers=headers, timeout=self.timeout
            )
        return self.session.post(self.base + path, json=body, timeout=self.timeout)

    def delete(self, path: str) -> requests.Response:
        return self.session.delete(self.base + path, timeout=self.timeout)

    # ---- routes ---------------------------------------------------------------
    def place(
        self, account: str, symbol: str, side: str, qty: int, price: int | None = None, **extra: Any
    ) -> requests.Response:
        body = {
            "symbol": symbol,
            "side": side,
            "qty": qty,
            "account": account,
            "type": "limit" if price is not None else "market",
            **extra,
        }
        if price is not None:
            body["price"] = price
        return self.post("/orders", body)

    def book(self, symbol: str) -> dict[str, Any]:
        resp = self.get(f"/book/{symbol}")
        assert resp.status_code == 200, resp.text
        return resp.json()

    def positions(self, symbol: str) -> dict[str, dict[str, Any]]:
        """{account: position} for one symbol."""
        resp = self.get("/positions")
        assert resp.status_code == 200, resp.text
        return {p["account"]: p for p in resp.json()["positions"] if p["symbol"] == symbol}

    def metric(self, name: str) -> float:
        """The sum of every sample of a counter in /metrics (0 when absent)."""
        resp = self.get("/metrics")
        assert resp.status_code == 200, resp.text
        total = 0.0
        for line in resp.text.splitlines():
            if line.startswith(name) and line[len(name) : len(name) + 1] in (" ", "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def wait_healthy(self, timeout: float) -> float:
        """Seconds until /health answers 200 (bounded; AssertionError past `timeout`)."""
        start = time.monotonic()
        delay, last = 0.2, "no answer"
        while time.monotonic() - start < timeout:
            try:
                resp = self.get("/health")
                if resp.status_code == 200:
                    return time.monotonic() - start
                last = f"{resp.status_code} {resp.text[:120]}"
            except requests.RequestException as err:
                last = type(err).__name__
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        raise AssertionError(f"/health did not answer 200 within {timeout:g}s: {last}")
