"""Stop orders end to end through REST (dev auth) and the ws ``orders`` stream: each direction,
limit and market, refusals, batch placement, open orders, cancel and cancel-all, history."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Client, Stack, eventually
from tests.ws.ws_helpers import connect, ws_server


def order(side: str, user: str, quantity: str = "1", **extra: Any) -> dict:
    return {"market": "TATA_INR", "side": side, "quantity": quantity, "user_id": user, **extra}


def stop(side: str, user: str, trigger: str, price: str | None = None, **extra: Any) -> dict:
    if price is None:
        return order(side, user, type="market", trigger_price=trigger, **extra)
    return order(side, user, price=price, trigger_price=trigger, **extra)


async def refused(client: Client, body: dict) -> str:
    status, answer, _ = await client.call("POST", "/api/v1/order", body)
    assert status == 400, answer
    return answer["error"]["code"]


async def trade_at(client: Client, price: str) -> None:
    """User 4 buys 1 from user 3 at ``price``, which becomes the last trade price."""
    await client.ok("POST", "/api/v1/order", order("buy", "4", price=price))
    sold = await client.ok("POST", "/api/v1/order", order("sell", "3", price=price))
    assert sold["status"] == "filled", sold


async def test_stop_orders_through_rest_and_the_orders_stream(client: Client, stack: Stack):
    for user in ("3", "4"):
        await client.deposit(user, "INR", "100000")
        await client.deposit(user, "TATA", "1000")
    # no trade yet: a trigger has nothing to be above or below
    assert await refused(client, stop("sell", "2", "99")) == "INVALID_PRICE"
    await trade_at(client, "100")

    # the contract's refusals
    assert await refused(client, stop("sell", "2", "100")) == "INVALID_PRICE"  # = last price
    assert await refused(client, stop("sell", "2", "99", "98", post_only=True)) == "INVALID_ORDER"
    assert (
        await refused(client, stop("sell", "2", "99", "98", time_in_force="FOK")) == "INVALID_ORDER"
    )
    assert await refused(client, stop("sell", "2", "99.001")) == "INVALID_PRICE"  # off the tick
    assert await refused(client, stop("sell", "2", "-1")) == "INVALID_PRICE"
    assert await refused(client, stop("sell", "2", "abc")) == "INVALID_PRICE"
    assert await refused(client, stop("sell", "2", "99", quantity="5000")) == "INSUFFICIENT_FUNDS"

    async with (
        ws_server(stack.settings.redis_url) as port,
        connect(port) as ws,
    ):
        assert (await ws.request("AUTH", {"user_id": "2"}))["result"] is None
        await ws.subscribe("orders")

        # user 2: a stop-loss market sell below, a take-profit limit sell above
        stop_loss = await client.ok("POST", "/api/v1/order", stop("sell", "2", "99"))
        assert stop_loss["status"] == "trigger_pending"
        assert (stop_loss["trigger_price"], stop_loss["triggered_at"]) == ("99", None)
        assert stop_loss["fills"] == [] and stop_loss["executed_quantity"] == "0"
        # user 1, in one batch: a stop market buy above, a limit buy below, one refused item
        batch = await client.ok(
            "POST",
            "/api/v1/orders",
            [
                stop("buy", "1", "105"),
                stop("buy", "1", "96", "95"),
                stop("buy", "1", "96", "95", post_only=True),
            ],
        )
        stop_buy, buy_below = batch[:2]
        assert [o["status"] for o in batch[:2]] == ["trigger_pending", "trigger_pending"]
        assert batch[2]["error"]["code"] == "INVALID_ORDER"
        take_profit = await client.ok("POST", "/api/v1/order", stop("sell", "2", "109", "110"))

        # funds locked as for the same order without a trigger (a market buy by quantity: none)
        balances = await client.ok("GET", "/api/v1/balances?user_id=2")
        assert balances["TATA"]["locked"] == "2"
        balances = await client.ok("GET", "/api/v1/balances?user_id=1")
        assert balances["INR"]["locked"] == "95"
        # waiting stops are open orders, never in depth
        mine = await client.ok("GET", "/api/v1/order/open?market=TATA_INR&user_id=2")
        assert [o["order_id"] for o in mine] == [stop_loss["order_id"], take_profit["order_id"]]
        depth = await client.ok("GET", "/api/v1/depth?symbol=TATA_INR")
        assert depth["bids"] == [] and depth["asks"] == []

        # falling to 99 triggers the stop-loss, which sells into the best bid (98)
        await client.ok("POST", "/api/v1/order", order("buy", "4", price="98"))
        await trade_at(client, "99")
        sold = await client.ok("GET", f"/api/v1/order?order_id={stop_loss['order_id']}&user_id=2")
        assert sold["status"] == "filled" and sold["triggered_at"] is not None
        assert [(f["price"], f["quantity"]) for f in sold["fills"]] == [("98", "1")]
        assert sold["trigger_price"] == "99"

        # its frames on the orders stream: placed, triggered, filled
        frames = []
        while len(frames) < 3:
            frame = await ws.recv()
            if frame["data"]["order"]["order_id"] == stop_loss["order_id"]:
                frames.append(frame["data"]["order"])
        assert [(f["status"], f["triggered_at"] is None) for f in frames] == [
            ("trigger_pending", True),
            ("new", False),
            ("filled", False),
        ]
        assert all(f["trigger_price"] == "99" for f in frames)

        # falling to 96 (at the trigger exactly) triggers the limit buy below: it rests at 95
        await trade_at(client, "96")
        rested = await client.ok("GET", f"/api/v1/order?order_id={buy_below['order_id']}&user_id=1")
        assert rested["status"] == "new" and rested["triggered_at"] is not None
        depth = await client.ok("GET", "/api/v1/depth?symbol=TATA_INR")
        assert ["95", "1"] in depth["bids"]

        # rising to 105 triggers the stop market buy, which takes the rest of the ask at 105
        await client.ok("POST", "/api/v1/order", order("sell", "3", quantity="2", price="105"))
        bought = await client.ok("POST", "/api/v1/order", order("buy", "4", price="105"))
        assert bought["status"] == "filled"
        got = await client.ok("GET", f"/api/v1/order?order_id={stop_buy['order_id']}&user_id=1")
        assert got["status"] == "filled" and got["executed_quote_quantity"] == "105"

        # rising to 109 triggers the take-profit, a limit sell at 110: it rests there
        await trade_at(client, "109")
        rested = await client.ok(
            "GET", f"/api/v1/order?order_id={take_profit['order_id']}&user_id=2"
        )
        assert rested["status"] == "new" and rested["triggered_at"] is not None
        assert ["110", "1"] in (await client.ok("GET", "/api/v1/depth?symbol=TATA_INR"))["asks"]
        # a waiting stop is cancelled like any order, and so is a triggered one
        waiting = await client.ok("POST", "/api/v1/order", stop("sell", "2", "90", "89"))
        cancelled = await client.ok(
            "DELETE",
            "/api/v1/order",
            {"market": "TATA_INR", "order_id": waiting["order_id"], "user_id": "2"},
        )
        assert cancelled["status"] == "cancelled" and cancelled["trigger_price"] == "90"
        assert cancelled["triggered_at"] is None
        another = await client.ok("POST", "/api/v1/order", stop("sell", "2", "91", "89"))
        all_cancelled = await client.ok("DELETE", "/api/v1/orders?market=TATA_INR&user_id=2")
        assert {o["order_id"] for o in all_cancelled} == {
            another["order_id"],
            take_profit["order_id"],
        }
        assert await client.ok("GET", "/api/v1/order/open?user_id=2") == []
        balances = await client.ok("GET", "/api/v1/balances?user_id=2")
        assert balances["TATA"]["locked"] == "0"

    # closed stops in the history, with their trigger fields
    async def history():
        found = await client.ok("GET", "/api/v1/orders/history?market=TATA_INR&user_id=2")
        return found if len(found) == 4 else None

    closed = {o["order_id"]: o for o in await eventually(history)}
    assert closed[stop_loss["order_id"]]["status"] == "filled"
    assert closed[stop_loss["order_id"]]["triggered_at"] == sold["triggered_at"]
    assert closed[take_profit["order_id"]]["status"] == "cancelled"
    assert closed[take_profit["order_id"]]["trigger_price"] == "109"
    assert closed[take_profit["order_id"]]["triggered_at"] == rested["triggered_at"]
    assert closed[waiting["order_id"]]["triggered_at"] is None
    assert closed[another["order_id"]]["status"] == "cancelled"
