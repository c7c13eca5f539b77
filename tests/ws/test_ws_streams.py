"""The server over real sockets and a real Redis, with engine events published by the test.

These cover the protocol, the shared Redis subscriptions, private isolation, tickers/klines and
slow clients; test_ws_engine.py runs the same server against the real engine.
"""

from __future__ import annotations

import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url
from ws_helpers import (
    CONFIG,
    connect,
    publish_market,
    publish_user,
    wait_numsub,
    ws_server,
)

from exchange.models import (
    BalanceChanged,
    OrderStatus,
    OrderType,
    OrderUpdated,
    OrderView,
    SelfTradePrevention,
    Side,
    TimeInForce,
    TradeExecuted,
)
from exchange.names import market_channel, user_channel
from exchange.ws.server import Options
from exchange.ws.session import Limits

MARKET = CONFIG.markets["TATA_INR"]
TS = 1_700_000_000_000


def trade(trade_id: int, price: int = 10_000, lots: int = 100, ts: int = TS) -> TradeExecuted:
    return TradeExecuted(
        trade_id=trade_id,
        market="TATA_INR",
        price=price,
        quantity=lots,
        quote_quantity=MARKET.quote_units(price, lots),
        taker_side=Side.BUY,
        buy_order_id=2 * trade_id,
        sell_order_id=2 * trade_id + 1,
        buyer_id="alice",
        seller_id="bob",
        timestamp=ts,
    )


def order(user_id: str, order_id: int) -> OrderView:
    return OrderView(
        order_id=order_id,
        user_id=user_id,
        client_order_id=None,
        market="TATA_INR",
        side=Side.BUY,
        type=OrderType.LIMIT,
        price=10_000,
        quantity=100,
        quote_quantity=None,
        executed_quantity=0,
        executed_quote_quantity=0,
        status=OrderStatus.NEW,
        time_in_force=TimeInForce.GTC,
        post_only=False,
        self_trade_prevention=SelfTradePrevention.CANCEL_TAKER,
        created_at=TS,
        updated_at=TS,
    )


async def test_subscribe_receive_unsubscribe(redis_url: str) -> None:
    async with ws_server(redis_url) as port, connect(port) as client:
        await client.subscribe("trade@TATA_INR", "trade@BTC_USDT")
        await publish_market(redis_url, "TATA_INR", [trade(1)])
        frame = await client.recv()
        assert frame == {
            "stream": "trade@TATA_INR",
            "data": {
                "type": "trade",
                "id": 1,
                "market": "TATA_INR",
                "price": "100",
                "quantity": "1",
                "quote_quantity": "100",
                "is_buyer_maker": False,
                "timestamp": TS,
            },
        }
        assert (await client.request("UNSUBSCRIBE", ["trade@TATA_INR"]))["result"] is None
        # One pub/sub connection delivers in publish order: the BTC trade is the next frame
        # only if the TATA one (published first) was not sent.
        await publish_market(redis_url, "TATA_INR", [trade(2)])
        await publish_market(
            redis_url,
            "BTC_USDT",
            [TradeExecuted(3, "BTC_USDT", 100, 1, 1000, Side.SELL, 1, 2, "alice", "bob", TS)],
        )
        frame = await client.recv()
        assert frame["stream"] == "trade@BTC_USDT" and frame["data"]["is_buyer_maker"] is True


async def test_paths(redis_url: str) -> None:
    async with ws_server(redis_url) as port:
        async with connect(port, "/ws") as client:
            await client.subscribe("ticker@TATA_INR")
        with pytest.raises(Exception):  # noqa: B017 - the handshake is refused (404)
            async with open_websocket_url(f"ws://127.0.0.1:{port}/elsewhere"):
                pass


async def test_errors_keep_the_connection_open(redis_url: str) -> None:
    async with ws_server(redis_url) as port, connect(port) as client:
        await client.send("{not json")
        frame = await client.recv()
        assert frame["id"] is None and frame["error"]["code"] == "INVALID_REQUEST"
        await client.send({"method": "SUBSCRIBE", "params": ["nope@TATA_INR"], "id": 1})
        assert (await client.recv())["error"]["code"] == "INVALID_REQUEST"
        await client.send({"method": "SUBSCRIBE", "params": ["depth@NOPE_INR"], "id": 2})
        frame = await client.recv()
        assert frame["id"] == 2 and frame["error"]["code"] == "INVALID_MARKET"
        await client.send({"method": "SUBSCRIBE", "params": ["orders"], "id": 3})
        assert (await client.recv())["error"]["code"] == "UNAUTHORIZED"
        await client.send({"method": "SUBSCRIBE", "params": ["kline_7m@TATA_INR"], "id": 4})
        assert (await client.recv())["error"]["code"] == "INVALID_REQUEST"
        await client.send({"method": "NOPE", "id": 5})
        assert (await client.recv())["id"] == 5
        await client.send(b"\xff\xfe binary garbage".decode("latin-1"))
        assert (await client.recv())["error"]["code"] == "INVALID_REQUEST"
        # Still open and working.
        await client.subscribe("trade@TATA_INR")
        await publish_market(redis_url, "TATA_INR", [trade(9)])
        assert (await client.recv())["data"]["id"] == 9


async def test_one_redis_subscription_per_channel(redis_url: str) -> None:
    async with ws_server(redis_url) as port:
        channel = user_channel("carol")
        await wait_numsub(redis_url, market_channel("TATA_INR"), 1)  # held for the tickers
        async with connect(port) as first, connect(port) as second:
            for client in (first, second):
                assert (await client.request("AUTH", {"user_id": "carol"}))["result"] is None
                await client.subscribe("orders", "balances")
            await wait_numsub(redis_url, channel, 1)
            await first.request("UNSUBSCRIBE", ["orders", "balances"])
            await trio.sleep(0.1)  # (nothing to wait for: the count must not drop to 0)
            await wait_numsub(redis_url, channel, 1)
        await wait_numsub(redis_url, channel, 0)


async def test_private_streams_are_isolated(redis_url: str) -> None:
    async with ws_server(redis_url) as port, connect(port) as alice, connect(port) as bob:
        await alice.request("AUTH", {"user_id": "alice"})
        await bob.request("AUTH", {"user_id": "bob"})
        await alice.subscribe("orders", "balances")
        await bob.subscribe("orders", "balances")
        await publish_user(
            redis_url,
            "alice",
            [
                OrderUpdated(order("alice", 11)),
                BalanceChanged("alice", "INR", 5_000_000, 1_000_000),
                BalanceChanged("alice", "TATA", 300, 0),
            ],
        )
        await publish_user(redis_url, "bob", [OrderUpdated(order("bob", 12))])
        frame = await alice.recv()
        assert frame["stream"] == "orders" and frame["data"]["type"] == "order"
        assert frame["data"]["order"]["order_id"] == "11" and "fills" not in frame["data"]["order"]
        assert await alice.recv() == {
            "stream": "balances",
            "data": {
                "type": "balances",
                "balances": {
                    "INR": {"available": "500", "locked": "100"},
                    "TATA": {"available": "3", "locked": "0"},
                },
            },
        }
        frame = await bob.recv()
        assert frame["stream"] == "orders" and frame["data"]["order"]["order_id"] == "12"
        # Re-AUTH as someone else is refused.
        answer = await bob.request("AUTH", {"user_id": "alice"})
        assert answer["error"]["code"] == "INVALID_REQUEST"


async def test_tickers_and_klines_from_trades(redis_url: str) -> None:
    async with ws_server(redis_url) as port, connect(port) as client:
        await client.subscribe("ticker@TATA_INR", "kline_1m@TATA_INR")
        minute = TS - TS % 60_000
        await publish_market(
            redis_url,
            "TATA_INR",
            [trade(1, 10_000, 150, minute + 1_000), trade(2, 9_950, 50, minute + 2_000)],
        )
        frames = [await client.recv() for _ in range(4)]
        tickers = [f["data"] for f in frames if f["stream"] == "ticker@TATA_INR"]
        klines = [f["data"] for f in frames if f["stream"] == "kline_1m@TATA_INR"]
        assert [t["last_price"] for t in tickers] == ["100", "99.5"]
        assert tickers[-1] == {
            "type": "ticker",
            "market": "TATA_INR",
            "first_price": "100",
            "last_price": "99.5",
            "price_change": "-0.5",
            "price_change_percent": "-0.5",
            "high": "100",
            "low": "99.5",
            "volume": "2",
            "quote_volume": "199.75",
            "trades": 2,
        }
        assert klines[-1]["interval"] == "1m" and klines[-1]["trades"] == 2
        assert (klines[-1]["open"], klines[-1]["close"], klines[-1]["volume"]) == (
            "100",
            "99.5",
            "2",
        )


async def test_slow_client_is_dropped_fast_client_keeps_receiving(redis_url: str) -> None:
    options = Options(limits=Limits(outbox_batches=8), send_buffer_bytes=4096)
    count = 1500
    async with (
        ws_server(redis_url, options=options) as port,
        connect(port) as fast,
        open_websocket_url(f"ws://127.0.0.1:{port}/", message_queue_size=1) as slow,
    ):
        await slow.send_message('{"method": "SUBSCRIBE", "params": ["trade@TATA_INR"], "id": 1}')
        assert await slow.get_message() == '{"id":1,"result":null}'
        await fast.subscribe("trade@TATA_INR")
        received = 0

        async def fast_reader() -> None:
            nonlocal received
            while received < count:
                frame = await fast.recv()
                assert frame["data"]["id"] == received + 1
                received += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(fast_reader)
            for first in range(1, count + 1, 10):
                await publish_market(
                    redis_url, "TATA_INR", [trade(i) for i in range(first, first + 10)]
                )
        assert received == count
        # The slow client (which stopped reading) finds a 1008 close after what was sent.
        with trio.fail_after(10), pytest.raises(ConnectionClosed) as closed:
            while True:
                await slow.get_message()
        assert closed.value.reason.code == 1008
