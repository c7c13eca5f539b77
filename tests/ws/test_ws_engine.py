"""The server against the real engine (and, for REST comparisons, the db writer and the API).

A seeded order flow goes in through the gateway while clients keep local books from the depth
stream; at the end every local book equals the engine's depth, and trade and ticker frames equal
what the REST API serves from PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from ws_helpers import CONFIG, Client, connect, ws_server

from exchange.api.app import create_app
from exchange.db import program as db_writer
from exchange.dev.flow import Flow
from exchange.engine import program as engine_program
from exchange.gateway import open_gateway
from exchange.models import Deposit, GetDepth, OrderView, PlaceOrder, Side
from exchange.settings import Settings
from exchange.views import depth_json

MARKET = "TATA_INR"
POLL_TIMEOUT_S = 20.0


@pytest.fixture
async def engine(redis_url: str, nursery: trio.Nursery) -> Settings:
    settings = Settings(redis_url=redis_url, auth_mode="dev", engine_timeout_s=5.0)
    await nursery.start(engine_program.run, settings)
    return settings


class LocalBook:
    """A client-side book kept from ``depth@M`` frames, checking the id chain."""

    def __init__(self) -> None:
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}
        self.last_id: int | None = None
        self.snapshots = 0
        self.diffs = 0

    def apply(self, data: dict[str, Any]) -> None:
        if data["type"] == "depth_snapshot":
            self.bids = dict(data["bids"])
            self.asks = dict(data["asks"])
            self.last_id = data["last_update_id"]
            self.snapshots += 1
            return
        assert data["type"] == "depth"
        assert self.last_id is not None, "a diff before the snapshot"
        assert data["first_update_id"] == self.last_id + 1, (self.last_id, data)
        for side, levels in ((self.bids, data["bids"]), (self.asks, data["asks"])):
            for price, quantity in levels:
                if quantity == "0":
                    side.pop(price, None)
                else:
                    side[price] = quantity
        self.last_id = data["last_update_id"]
        self.diffs += 1

    async def follow(self, client: Client) -> None:
        while True:
            frame = await client.recv(POLL_TIMEOUT_S)
            assert frame["stream"] == f"depth@{MARKET}"
            self.apply(frame["data"])


async def test_local_books_equal_engine_depth_after_random_flow(engine: Settings) -> None:
    flow = Flow(CONFIG, seed=6, users=20, markets=[MARKET])
    commands = flow.commands(1200)
    async with (
        open_gateway(engine.redis_url) as gateway,
        ws_server(engine.redis_url) as port,
        connect(port) as early,
        connect(port) as late,
        trio.open_nursery() as nursery,
    ):
        with trio.fail_after(POLL_TIMEOUT_S):
            while gateway.heartbeat() is None:
                await trio.sleep(0.05)
        await gateway.submit_many(flow.funding)
        books = [LocalBook(), LocalBook()]
        await early.subscribe(f"depth@{MARKET}")
        nursery.start_soon(books[0].follow, early)
        for start in range(0, len(commands), 40):
            await gateway.submit_many(commands[start : start + 40])
            if start == 400:  # the late client joins mid-flow: snapshot + buffered diffs
                await late.subscribe(f"depth@{MARKET}")
                nursery.start_soon(books[1].follow, late)
        depth = await gateway.query(GetDepth(MARKET, None))
        expected = depth_json(CONFIG, depth)
        with trio.fail_after(POLL_TIMEOUT_S):
            while any(book.last_id != depth.last_update_id for book in books):
                await trio.sleep(0.02)
        for book in books:
            assert book.bids == dict(expected["bids"])
            assert book.asks == dict(expected["asks"])
            assert book.snapshots == 1 and book.diffs > 0
        assert flow.trades > 50  # the flow really traded
        nursery.cancel_scope.cancel()


async def _place(gateway: Any, user: str, side: Side, price: int, lots: int) -> OrderView:
    reply = await gateway.submit(PlaceOrder(user, MARKET, side, price=price, quantity=lots))
    assert isinstance(reply, OrderView), reply
    return reply


async def test_private_streams_follow_the_engine(engine: Settings) -> None:
    async with (
        open_gateway(engine.redis_url) as gateway,
        ws_server(engine.redis_url) as port,
        connect(port) as alice,
        connect(port) as bob,
    ):
        with trio.fail_after(POLL_TIMEOUT_S):
            while gateway.heartbeat() is None:
                await trio.sleep(0.05)
        for client, user in ((alice, "alice"), (bob, "bob")):
            await client.request("AUTH", {"user_id": user})
            await client.subscribe("orders", "balances")
        await gateway.submit(Deposit("alice", "INR", 10_000_000))  # 1000 INR
        await gateway.submit(Deposit("bob", "TATA", 1_000))  # 10 TATA
        assert (await alice.recv())["data"]["balances"] == {
            "INR": {"available": "1000", "locked": "0"}
        }
        assert (await bob.recv())["data"]["balances"] == {
            "TATA": {"available": "10", "locked": "0"}
        }
        buy = await _place(gateway, "alice", Side.BUY, 10_000, 200)  # 2 @ 100
        sell = await _place(gateway, "bob", Side.SELL, 10_000, 100)  # 1 @ 100: trades
        seen: dict[str, list[dict]] = {"alice": [], "bob": []}
        for client, user, order_id, final_status in (
            (alice, "alice", buy.order_id, "partially_filled"),
            (bob, "bob", sell.order_id, "filled"),
        ):
            while True:
                frame = await client.recv()
                seen[user].append(frame)
                data = frame["data"]
                if data["type"] == "order" and data["order"]["status"] == final_status:
                    break
            for frame in seen[user]:
                if frame["stream"] == "orders":
                    assert frame["data"]["order"]["order_id"] == str(order_id)
        alice_balances = [f["data"]["balances"] for f in seen["alice"] if f["stream"] == "balances"]
        assert alice_balances[0]["INR"] == {"available": "800", "locked": "200"}


@pytest.fixture
async def stack(redis_url: str, database_url: str, nursery: trio.Nursery) -> Settings:
    settings = Settings(
        redis_url=redis_url, database_url=database_url, auth_mode="dev", engine_timeout_s=5.0
    )
    await nursery.start(engine_program.run, settings)
    await nursery.start(db_writer.run, settings)
    return settings


async def test_trade_and_ticker_frames_match_rest(stack: Settings) -> None:
    flow = Flow(CONFIG, seed=3, users=10, markets=[MARKET])
    commands = flow.commands(400)
    trades: list[dict] = []
    tickers: list[dict] = []
    app = create_app(stack)
    async with (
        open_gateway(stack.redis_url) as gateway,
        ws_server(stack.redis_url) as port,
        connect(port) as client,
        app.test_app() as test_app,
    ):
        with trio.fail_after(POLL_TIMEOUT_S):
            while gateway.heartbeat() is None:
                await trio.sleep(0.05)
        await client.subscribe(f"trade@{MARKET}", f"ticker@{MARKET}")
        await gateway.submit_many(flow.funding)
        for start in range(0, len(commands), 50):
            await gateway.submit_many(commands[start : start + 50])
        rest = test_app.test_client()

        async def get(path: str) -> Any:
            response = await rest.get(path)
            assert response.status_code == 200, path
            return await response.get_json()

        with trio.fail_after(POLL_TIMEOUT_S):
            while True:
                rest_trades = await get(f"/api/v1/trades?symbol={MARKET}&limit=1000")
                if len(rest_trades) == flow.trades:
                    break
                await trio.sleep(0.05)
        assert flow.trades > 20
        with trio.fail_after(POLL_TIMEOUT_S):
            while len(trades) < flow.trades:
                frame = await client.recv()
                (trades if frame["data"]["type"] == "trade" else tickers).append(frame["data"])
            while len(tickers) < flow.trades:
                tickers.append((await client.recv())["data"])
        assert [
            {k: v for k, v in t.items() if k != "type"} for t in reversed(trades)
        ] == rest_trades
        rest_ticker = await get(f"/api/v1/ticker?symbol={MARKET}")
        assert {k: v for k, v in tickers[-1].items() if k != "type"} == rest_ticker
