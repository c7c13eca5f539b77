"""Shared pieces of the WebSocket tests: a server on a free port, a JSON client, publishing."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import orjson
import redis
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from exchange import codec
from exchange.markets import load_config
from exchange.models import Event, Side, TradeExecuted
from exchange.names import market_channel, user_channel
from exchange.settings import Settings
from exchange.ws.server import Options, run

CONFIG = load_config()
RECEIVE_TIMEOUT_S = 10.0


@contextlib.asynccontextmanager
async def ws_server(
    redis_url: str,
    *,
    auth_mode: str = "dev",
    options: Options | None = None,
    database_url: str | None = None,
    engine_timeout_s: float = 5.0,
    **changes: Any,
) -> AsyncIterator[int]:
    """Run the server on a free port; yields the port.

    Its statistics are seeded from ``database_url``; without one they are not (tests must never
    reach the machine's own PostgreSQL, the default of Settings).
    """
    options = attrs.evolve(
        options or Options(),
        seed_statistics=database_url is not None,
        history=database_url is not None,
    )
    settings = Settings(
        redis_url=redis_url,
        ws_port=0,
        auth_mode=auth_mode,
        engine_timeout_s=engine_timeout_s,
        **changes,
    )
    if database_url is not None:
        settings = attrs.evolve(settings, database_url=database_url)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            lambda task_status: run(settings, options=options, task_status=task_status)
        )
        yield port
        nursery.cancel_scope.cancel()


class Client:
    """A JSON client over a real socket."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.next_id = 0

    async def send(self, frame: Any) -> None:
        await self.ws.send_message(
            frame if isinstance(frame, str) else orjson.dumps(frame).decode()
        )

    async def recv(self, timeout_s: float = RECEIVE_TIMEOUT_S) -> dict[str, Any]:
        with trio.fail_after(timeout_s):
            return orjson.loads(await self.ws.get_message())

    async def request(self, method: str, params: Any) -> dict[str, Any]:
        """Send a request and return its answer (frames before it are not expected)."""
        self.next_id += 1
        await self.send({"method": method, "params": params, "id": self.next_id})
        answer = await self.recv()
        assert answer.get("id") == self.next_id, answer
        return answer

    async def subscribe(self, *streams: str) -> None:
        answer = await self.request("SUBSCRIBE", list(streams))
        assert answer == {"id": self.next_id, "result": None}

    async def recv_until(
        self, accept: Callable[[dict[str, Any]], bool], timeout_s: float = RECEIVE_TIMEOUT_S
    ) -> dict[str, Any]:
        with trio.fail_after(timeout_s):
            while True:
                frame = await self.recv(timeout_s)
                if accept(frame):
                    return frame


@contextlib.asynccontextmanager
async def connect(port: int, path: str = "/") -> AsyncIterator[Client]:
    async with open_websocket_url(f"ws://127.0.0.1:{port}{path}") as ws:
        yield Client(ws)


def publish_sync(redis_url: str, channel: str, events: list[dict[str, Any]]) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        client.publish(channel, orjson.dumps(events))
    finally:
        client.close()


async def publish(redis_url: str, channel: str, events: list[dict[str, Any]]) -> None:
    await trio.to_thread.run_sync(publish_sync, redis_url, channel, events)


async def publish_market(redis_url: str, symbol: str, events: list[Event]) -> None:
    await publish(
        redis_url, market_channel(symbol), [codec.event_message(e, seq=0) for e in events]
    )


async def publish_user(redis_url: str, user_id: str, events: list[Event]) -> None:
    await publish(redis_url, user_channel(user_id), [codec.event_message(e, seq=0) for e in events])


def trade(
    trade_id: int,
    *,
    market: str = "TATA_INR",
    price: int = 10_000,
    quantity: int = 100,
    timestamp: int = 1_700_000_000_000,
) -> TradeExecuted:
    """A trade as the engine makes them (integer ticks and lots), between placeholder owners."""
    return TradeExecuted(
        trade_id=trade_id,
        market=market,
        price=price,
        quantity=quantity,
        quote_quantity=CONFIG.markets[market].quote_units(price, quantity),
        taker_side=Side.SELL,
        buy_order_id=1,
        sell_order_id=2,
        buyer_id="b",
        seller_id="s",
        timestamp=timestamp,
    )


def numsub(redis_url: str, channel: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return dict(client.pubsub_numsub(channel))[channel.encode()]
    finally:
        client.close()


async def wait_numsub(redis_url: str, channel: str, expected: int, timeout_s: float = 5.0) -> None:
    with trio.fail_after(timeout_s):
        while await trio.to_thread.run_sync(numsub, redis_url, channel) != expected:
            await trio.sleep(0.01)
