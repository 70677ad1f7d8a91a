"""The smoke suite: seconds, right after every deployment. The service is up, its
dependencies answer, it exposes metrics, and an order goes through Postgres and back."""

from __future__ import annotations

import pytest
from client import Api

pytestmark = pytest.mark.smoke


def test_health_is_ok_with_postgres_and_redis(api: Api, expected_version: str) -> None:
    resp = api.get("/health")
    assert resp.status_code == 200, f"/health answered {resp.status_code}: {resp.text[:300]}"
    body = resp.json()
    assert body["status"] == "ok"
    assert body["checks"]["postgres"]["status"] == "ok"
    assert body["checks"]["redis"]["status"] == "ok"
    assert not body.get("fault_injected"), "a fault-injection switch is on"
    if expected_version:
        assert body.get("version") == expected_version


def test_metrics_are_exposed(api: Api) -> None:
    resp = api.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    for name in ("http_requests_total", "http_request_duration_seconds", "orders_total"):
        assert name in resp.text, f"/metrics lacks {name}"


def test_an_order_is_stored_read_back_and_cancelled(api: Api, symbol: str, accounts) -> None:
    placed = api.place(accounts["alice"], symbol, "buy", 3, 5000, client_id="smoke-1")
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert (order["status"], order["remaining"], order["fills"]) == ("open", 3, [])
    read = api.get(f"/orders/{order['id']}")
    assert read.status_code == 200 and read.json()["client_id"] == "smoke-1"
    cancelled = api.delete(f"/orders/{order['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
