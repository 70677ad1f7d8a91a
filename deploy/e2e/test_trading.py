"""The end-to-end suite: two (and more) clients trading through the public API."""

from __future__ import annotations

import pytest
from client import Api


def test_two_clients_see_the_book_the_fill_and_their_positions(
    api: Api, symbol: str, accounts
) -> None:
    alice, bob = accounts["alice"], accounts["bob"]
    ask = api.place(alice, symbol, "sell", 10, 10_000)
    assert ask.status_code == 201, ask.text
    book = api.book(symbol)
    assert book["asks"] == [{"price": 10_000, "qty": 10, "orders": 1}]
    assert book["bids"] == [] and book["last_price"] is None

    bid = api.place(bob, symbol, "buy", 4, 10_000)
    assert bid.status_code == 201, bid.text
    taker = bid.json()
    assert taker["status"] == "filled" and taker["remaining"] == 0
    assert taker["fills"] == [{"maker_order_id": ask.json()["id"], "price": 10_000, "qty": 4}]

    maker = api.get(f"/orders/{ask.json()['id']}").json()
    assert (maker["status"], maker["filled"], maker["remaining"]) == ("partially_filled", 4, 6)
    book = api.book(symbol)
    assert book["asks"] == [{"price": 10_000, "qty": 6, "orders": 1}]
    assert book["last_price"] == 10_000

    pos = api.positions(symbol)
    assert pos[alice]["net"] == -4 and pos[bob]["net"] == 4
    assert pos[bob]["average_price"] == 10_000
    assert pos[alice]["realised_pnl"] == pos[bob]["realised_pnl"] == 0


def test_pnl_is_realised_and_marked_at_the_last_trade(api: Api, symbol: str, accounts) -> None:
    alice, bob, dave = accounts["alice"], accounts["bob"], accounts["dave"]
    assert api.place(alice, symbol, "sell", 5, 10_000).status_code == 201
    assert api.place(bob, symbol, "buy", 5, 10_000).status_code == 201  # bob long 5 @ 10000
    assert api.place(bob, symbol, "sell", 2, 10_100).status_code == 201  # rests
    fill = api.place(dave, symbol, "buy", 2, 10_100)
    assert fill.status_code == 201 and fill.json()["status"] == "filled", fill.text

    pos = api.positions(symbol)
    assert pos[bob]["net"] == 3
    assert pos[bob]["realised_pnl"] == 2 * 100  # sold 2 bought at 10000 for 10100
    assert pos[bob]["unrealised_pnl"] == 3 * 100  # 3 left, marked at 10100
    assert pos[bob]["mark_price"] == 10_100
    assert pos[alice]["unrealised_pnl"] == -5 * 100
    assert pos[dave]["net"] == 2 and pos[dave]["unrealised_pnl"] == 0


def test_cancel_removes_the_order_once(api: Api, symbol: str, accounts) -> None:
    order = api.place(accounts["carol"], symbol, "buy", 7, 9_000).json()
    assert api.book(symbol)["bids"] == [{"price": 9_000, "qty": 7, "orders": 1}]
    first = api.delete(f"/orders/{order['id']}")
    assert first.status_code == 200 and first.json()["status"] == "cancelled"
    assert api.book(symbol)["bids"] == []
    again = api.delete(f"/orders/{order['id']}")
    assert again.status_code == 409, again.text
    assert api.get("/orders/999999999999").status_code == 404


def test_bad_input_is_refused_with_a_reason(api: Api, symbol: str, accounts) -> None:
    broken = api.post("/orders", data=b"{not json")
    assert broken.status_code == 400 and "error" in broken.json()
    no_price = api.post("/orders", {"symbol": symbol, "side": "buy", "type": "limit", "qty": 1})
    assert no_price.status_code == 400, no_price.text
    too_big = api.place(accounts["alice"], symbol, "buy", 10_000_000, 100)
    assert too_big.status_code == 422, too_big.text
    assert too_big.json()["rule"] == "max_order_qty"


def test_metrics_count_what_happened(api: Api, symbol: str, accounts) -> None:
    orders, fills = api.metric("orders_total"), api.metric("fills_total")
    api.place(accounts["alice"], symbol, "sell", 1, 20_000)
    api.place(accounts["bob"], symbol, "buy", 1, 20_000)
    assert api.metric("orders_total") >= orders + 2
    assert api.metric("fills_total") >= fills + 1
    assert api.metric("http_requests_total") > 0


@pytest.mark.restart
def test_the_market_survives_a_restart(api: Api, symbol: str, accounts, restart) -> None:
    alice, bob = accounts["alice"], accounts["bob"]
    resting = api.place(alice, symbol, "sell", 8, 12_000).json()
    assert api.place(bob, symbol, "buy", 3, 12_000).status_code == 201
    before_book, before_pos = api.book(symbol), api.positions(symbol)

    restart()

    assert api.book(symbol) == before_book
    assert api.positions(symbol) == before_pos
    assert api.get(f"/orders/{resting['id']}").json()["remaining"] == 5
    # and it still trades: the rest of the resting order fills after the restart
    after = api.place(bob, symbol, "buy", 5, 12_000)
    assert after.status_code == 201 and after.json()["status"] == "filled", after.text
    assert api.book(symbol)["asks"] == []
