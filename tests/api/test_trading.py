"""A full trading scenario between two users through the REST API (dev auth)."""

from __future__ import annotations

import pytest

from exchange.errors import ErrorCode, RequestError
from exchange.gateway import open_gateway
from exchange.history.queries import open_history_reader
from exchange.markets import load_config
from exchange.models import GetOrder, Rejection
from exchange.surfaces.backend import Backend
from tests.api.conftest import Client, eventually


def order(side: str, price: str, quantity: str, user: str, **extra) -> dict:
    return {
        "market": "TATA_INR",
        "side": side,
        "price": price,
        "quantity": quantity,
        "user_id": user,
        **extra,
    }


async def test_place_fill_cancel_and_every_view(client: Client):
    # user 1 rests a sell; user 2 buys part of it at a higher limit: the trade is at the maker's price
    sell = await client.ok(
        "POST", "/api/v1/order", order("sell", "100", "10", "1", client_order_id="s-1")
    )
    assert (sell["status"], sell["executed_quantity"], sell["fills"]) == ("new", "0", [])
    assert sell["price"] == "100" and sell["quantity"] == "10" and sell["client_order_id"] == "s-1"

    buy = await client.ok("POST", "/api/v1/order", order("buy", "100.5", "4", "2"))
    assert buy["status"] == "filled"
    assert buy["executed_quantity"] == "4" and buy["executed_quote_quantity"] == "400"
    assert [(f["price"], f["quantity"]) for f in buy["fills"]] == [("100", "4")]
    trade_id = buy["fills"][0]["trade_id"]

    # the same client_order_id returns the original order and creates nothing
    again = await client.ok(
        "POST", "/api/v1/order", order("sell", "100", "10", "1", client_order_id="s-1")
    )
    assert again["order_id"] == sell["order_id"]

    depth = await client.ok("GET", "/api/v1/depth?symbol=TATA_INR")
    assert depth["asks"] == [["100", "6"]] and depth["bids"] == []
    assert depth["market"] == "TATA_INR" and depth["last_update_id"] >= 2

    open_orders = await client.ok("GET", "/api/v1/order/open?market=TATA_INR&user_id=1")
    assert [(o["order_id"], o["status"], o["executed_quantity"]) for o in open_orders] == [
        (sell["order_id"], "partially_filled", "4")
    ]
    assert await client.ok("GET", "/api/v1/order/open?user_id=2") == []

    balances_1 = await client.ok("GET", "/api/v1/balances?user_id=1")
    assert balances_1["TATA"] == {"available": "990", "locked": "6"}
    assert balances_1["INR"] == {"available": "100400", "locked": "0"}
    balances_2 = await client.ok("GET", "/api/v1/balances?user_id=2")
    assert balances_2["TATA"] == {"available": "1004", "locked": "0"}
    assert balances_2["INR"] == {"available": "99600", "locked": "0"}
    assert set(balances_2) == {"TATA", "INR", "BTC", "ETH", "USDT"}  # zeros included

    # user 2 can neither see nor cancel user 1's order
    status, body, _ = await client.call(
        "GET", f"/api/v1/order?order_id={sell['order_id']}&user_id=2"
    )
    assert (status, body["error"]["code"]) == (404, "ORDER_NOT_FOUND")
    status, body, _ = await client.call(
        "DELETE",
        "/api/v1/order",
        {"market": "TATA_INR", "order_id": sell["order_id"], "user_id": "2"},
    )
    assert (status, body["error"]["code"]) == (404, "ORDER_NOT_FOUND")

    looked_up = await client.ok("GET", "/api/v1/order?client_order_id=s-1&user_id=1")
    assert looked_up["order_id"] == sell["order_id"] and looked_up["status"] == "partially_filled"

    cancelled = await client.ok(
        "DELETE", "/api/v1/order/", {"symbol": "TATA_INR", "client_order_id": "s-1", "user_id": "1"}
    )
    assert cancelled["status"] == "cancelled" and cancelled["executed_quantity"] == "4"
    status, body, _ = await client.call(
        "DELETE",
        "/api/v1/order",
        {"market": "TATA_INR", "order_id": sell["order_id"], "user_id": "1"},
    )
    assert (status, body["error"]["code"]) == (404, "ORDER_NOT_FOUND")  # closed now
    assert (await client.ok("GET", "/api/v1/balances?user_id=1"))["TATA"] == {
        "available": "996",
        "locked": "0",
    }
    assert (await client.ok("GET", "/api/v1/depth?market=TATA_INR&limit=5"))["asks"] == []

    # a batch: each item on its own; cancel-all returns what it cancelled
    batch = await client.ok(
        "POST",
        "/api/v1/orders?user_id=2",
        [
            order("buy", "90", "1", "2"),
            {"market": "TATA_INR", "side": "buy", "price": "91", "quantity": "1"},  # query user
            order("buy", "90.001", "1", "2"),
            order("buy", "1000", "1000", "2"),  # 1,000,000 INR: more than user 2 has
        ],
    )
    assert [item.get("status") for item in batch[:2]] == ["new", "new"]
    assert batch[2]["error"]["code"] == "INVALID_PRICE"
    assert batch[3]["error"]["code"] == "INSUFFICIENT_FUNDS"
    gone = await client.ok("DELETE", "/api/v1/orders?market=TATA_INR&user_id=2")
    assert sorted(o["order_id"] for o in gone) == sorted(o["order_id"] for o in batch[:2])
    assert all(o["status"] == "cancelled" for o in gone)

    # history from PostgreSQL (the db writer catches up asynchronously)
    async def trades():
        found = await client.ok("GET", "/api/v1/trades?symbol=TATA_INR")
        return found if found else None

    (trade,) = await eventually(trades)
    assert trade == {
        "id": trade_id,
        "market": "TATA_INR",
        "price": "100",
        "quantity": "4",
        "quote_quantity": "400",
        "is_buyer_maker": False,
        "timestamp": trade["timestamp"],
    }
    (kline,) = await client.ok("GET", "/api/v1/klines?market=TATA_INR&interval=1m")
    assert (kline["open"], kline["close"], kline["volume"], kline["trades"]) == (
        "100",
        "100",
        "4",
        1,
    )
    assert kline["quote_volume"] == "400"
    ticker = await client.ok("GET", "/api/v1/ticker?symbol=TATA_INR")
    assert (ticker["last_price"], ticker["volume"], ticker["trades"]) == ("100", "4", 1)
    tickers = await client.ok("GET", "/api/v1/tickers")
    assert {t["market"] for t in tickers} == {"TATA_INR", "BTC_USDT", "ETH_USDT"}

    fills_2 = await client.ok("GET", "/api/v1/fills?market=TATA_INR&user_id=2")
    assert [(f["trade_id"], f["side"], f["is_maker"]) for f in fills_2] == [
        (trade_id, "buy", False)
    ]
    fills_1 = await client.ok("GET", "/api/v1/fills?user_id=1")
    assert [(f["order_id"], f["is_maker"]) for f in fills_1] == [(sell["order_id"], True)]

    async def history():
        found = await client.ok("GET", "/api/v1/orders/history?market=TATA_INR&user_id=1")
        return found if found else None

    (closed,) = await eventually(history)
    assert (closed["order_id"], closed["status"]) == (sell["order_id"], "cancelled")
    assert "fills" not in closed


class ForgetfulGateway:
    """The real gateway, except that the engine has forgotten every closed order (as it does
    past its retention), so lookups must fall back to PostgreSQL."""

    def __init__(self, gateway) -> None:
        self.gateway = gateway

    async def query(self, query):
        if isinstance(query, GetOrder):
            return Rejection(ErrorCode.ORDER_NOT_FOUND, "no such order")
        return await self.gateway.query(query)


async def test_closed_orders_are_looked_up_in_postgresql(client: Client, stack):
    placed = await client.ok(
        "POST", "/api/v1/order", order("buy", "50", "1", "1", client_order_id="gone")
    )
    await client.ok(
        "DELETE",
        "/api/v1/order",
        {"market": "TATA_INR", "order_id": placed["order_id"], "user_id": "1"},
    )
    config = load_config()
    async with (
        open_gateway(stack.settings.redis_url) as gateway,
        open_history_reader(stack.settings.database_url) as history,
    ):
        backend = Backend(config, ForgetfulGateway(gateway), history)

        async def stored():
            try:
                found = await backend.order("1", None, "gone")
            except RequestError:
                return None
            return found if found["status"] == "cancelled" else None  # the writer catches up

        found = await eventually(stored)
        assert (found["order_id"], found["status"], found["client_order_id"]) == (
            placed["order_id"],
            "cancelled",
            "gone",
        )
        assert (await backend.order("1", int(placed["order_id"]), None))["order_id"] == placed[
            "order_id"
        ]
        with pytest.raises(RequestError) as info:
            await backend.order("2", int(placed["order_id"]), None)  # someone else's
        assert info.value.code is ErrorCode.ORDER_NOT_FOUND
