"""A WebSocket server started after trades: its statistics are seeded from PostgreSQL.

The engine and the db writer run; trades are made and stored; then a new ws server starts, and
the ticker and kline frames of the next trade must equal what REST computes from PostgreSQL.
Without a usable database the server still comes up, with statistics from live trades only.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import trio
from ws_helpers import CONFIG, Client, connect, publish_market, trade, ws_server

from exchange import codec
from exchange.db import program as db_writer
from exchange.db.migrate import migrate
from exchange.dev.flow import Flow
from exchange.engine import program as engine_program
from exchange.gateway import open_gateway
from exchange.history.queries import HistoryQueries, open_history_reader
from exchange.marketstats import INTERVALS_MS
from exchange.models import Deposit, GetDepth, OrderView, PlaceOrder, Side
from exchange.names import market_channel
from exchange.settings import Settings
from exchange.surfaces.native.ws_topics import NativeTopics
from exchange.ws.hub import Hub
from exchange.ws.seed import seed_statistics

MARKET = "TATA_INR"
POLL_TIMEOUT_S = 20.0
STREAMS = (f"ticker@{MARKET}", f"kline_1m@{MARKET}", f"kline_1w@{MARKET}")


@pytest.fixture
async def stack(redis_url: str, database_url: str, nursery: trio.Nursery) -> Settings:
    settings = Settings(
        redis_url=redis_url, database_url=database_url, auth_mode="dev", engine_timeout_s=5.0
    )
    await nursery.start(engine_program.run, settings)
    await nursery.start(db_writer.run, settings)
    return settings


async def _stored_trades(history: HistoryQueries, count: int) -> None:
    with trio.fail_after(POLL_TIMEOUT_S):
        while len(await history.recent_trades(MARKET, 1000)) < count:
            await trio.sleep(0.05)


async def _frames(client: Client, streams: tuple[str, ...] = STREAMS) -> dict[str, dict[str, Any]]:
    """One frame of each stream (the next trade's), by stream, without ``type``/``interval``."""
    frames: dict[str, dict[str, Any]] = {}
    while len(frames) < len(streams):
        frame = await client.recv(POLL_TIMEOUT_S)
        assert frame["stream"] not in frames, frame
        data = frame["data"]
        frames[frame["stream"]] = {k: v for k, v in data.items() if k not in ("type", "interval")}
    return frames


async def _one_more_trade(gateway: Any) -> None:
    """Exactly one trade: a fresh user's buy of one lot against the book's best ask."""
    market = CONFIG.markets[MARKET]
    depth = await gateway.query(GetDepth(MARKET, None))
    if depth.asks:
        price = depth.asks[0][0]
    else:  # no ask left by the flow: put one above every bid
        price = (depth.bids[0][0] + 1) if depth.bids else 10_000
        await gateway.submit(Deposit("seller", market.base.name, market.base_units(1)))
        sell = await gateway.submit(
            PlaceOrder("seller", MARKET, Side.SELL, price=price, quantity=1)
        )
        assert isinstance(sell, OrderView), sell
    await gateway.submit(Deposit("buyer", market.quote.name, market.quote_units(price, 1)))
    buy = await gateway.submit(PlaceOrder("buyer", MARKET, Side.BUY, price=price, quantity=1))
    assert isinstance(buy, OrderView) and buy.status.value == "filled", buy


async def test_a_new_server_starts_from_the_stored_history(stack: Settings) -> None:
    flow = Flow(CONFIG, seed=11, users=10, markets=[MARKET])
    commands = flow.commands(300)
    async with (
        open_gateway(stack.redis_url) as gateway,
        open_history_reader(stack.database_url) as history,
    ):
        with trio.fail_after(POLL_TIMEOUT_S):
            while gateway.heartbeat() is None:
                await trio.sleep(0.05)
        await gateway.submit_many(flow.funding)
        for start in range(0, len(commands), 50):
            await gateway.submit_many(commands[start : start + 50])
        assert flow.trades > 20
        await _stored_trades(history, flow.trades)

        async with (
            ws_server(stack.redis_url, database_url=stack.database_url) as port,
            connect(port) as client,
        ):
            await client.subscribe(*STREAMS)
            await _one_more_trade(gateway)
            frames = await _frames(client)
            await _stored_trades(history, flow.trades + 1)
            [ticker] = await history.tickers([MARKET])
            assert frames[f"ticker@{MARKET}"] == ticker
            assert ticker["trades"] == flow.trades + 1
            for interval in ("1m", "1w"):
                [latest] = await history.klines(MARKET, interval, limit=1)
                assert frames[f"kline_{interval}@{MARKET}"] == latest


EVERY_STREAM = (f"ticker@{MARKET}", *(f"kline_{i}@{MARKET}" for i in INTERVALS_MS))


async def _rest_statistics(history: HistoryQueries) -> dict[str, dict[str, Any]]:
    """What REST serves: the ticker and the latest kline of every interval, by ws stream."""
    [ticker] = await history.tickers([MARKET])
    out = {f"ticker@{MARKET}": ticker}
    for interval in INTERVALS_MS:
        [latest] = await history.klines(MARKET, interval, limit=1)
        out[f"kline_{interval}@{MARKET}"] = latest
    return out


async def _next_trade_both_ways(gateway: Any, history: HistoryQueries, port: int, stored: int):
    """One more trade: its ws ticker and kline frames, and REST's figures once it is stored."""
    async with connect(port) as client:
        await client.subscribe(*EVERY_STREAM)
        await _one_more_trade(gateway)
        frames = await _frames(client, EVERY_STREAM)
    await _stored_trades(history, stored + 1)
    return frames, await _rest_statistics(history)


async def test_rest_and_ws_statistics_agree_live_and_after_a_restart(stack: Settings) -> None:
    """A ws server that folded the whole flow live, then a new one seeded from PostgreSQL:
    both give REST's ticker and current kline of every interval, to the byte."""
    flow = Flow(CONFIG, seed=5, users=10, markets=[MARKET])
    commands = flow.commands(300)
    async with (
        open_gateway(stack.redis_url) as gateway,
        open_history_reader(stack.database_url) as history,
    ):
        with trio.fail_after(POLL_TIMEOUT_S):
            while gateway.heartbeat() is None:
                await trio.sleep(0.05)
        async with ws_server(stack.redis_url, database_url=stack.database_url) as port:
            await gateway.submit_many(flow.funding)
            for start in range(0, len(commands), 50):
                await gateway.submit_many(commands[start : start + 50])
            assert flow.trades > 20
            await _stored_trades(history, flow.trades)
            frames, rest = await _next_trade_both_ways(gateway, history, port, flow.trades)
            assert rest[f"ticker@{MARKET}"]["trades"] == flow.trades + 1
            assert frames == rest
        async with ws_server(stack.redis_url, database_url=stack.database_url) as port:
            frames, rest = await _next_trade_both_ways(gateway, history, port, flow.trades + 1)
            assert rest[f"ticker@{MARKET}"]["trades"] == flow.trades + 2
            assert frames == rest


@pytest.mark.parametrize("broken", ["unreachable", "not migrated"])
async def test_without_a_database_the_server_starts_unseeded(
    redis_url: str, database_url: str, broken: str
) -> None:
    url = "postgresql://postgres@127.0.0.1:1/none" if broken == "unreachable" else database_url
    with trio.fail_after(POLL_TIMEOUT_S):
        async with ws_server(redis_url, database_url=url) as port, connect(port) as client:
            await client.subscribe(f"ticker@{MARKET}")
            await publish_market(redis_url, MARKET, [trade(5)])
            frame = await client.recv()
            assert frame["data"]["trades"] == 1 and frame["data"]["last_price"] == "100"


@pytest.mark.parametrize(("first_held", "lagging"), [(1, False), (5, True)])
async def test_held_trades_go_live_and_a_lagging_writer_is_reported(
    database_url: str, first_held: int, lagging: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """An empty database (newest trade 0): held trades 1, 2 follow on; 5, 6 leave a gap."""
    await trio.to_thread.run_sync(migrate, database_url)
    hub = Hub(CONFIG, subscriber=None, fetch_depth=None, surfaces=[NativeTopics(CONFIG)])  # type: ignore[arg-type]
    hub.hold_market_messages()
    for trade_id in (first_held, first_held + 1):
        event = codec.event_message(trade(trade_id), seq=trade_id)
        hub.dispatch(market_channel(MARKET), orjson.dumps([event]))
    with trio.fail_after(POLL_TIMEOUT_S):
        assert await seed_statistics(hub, database_url, catch_up_s=0.3)
    assert hub.held_market_messages is None
    assert hub.stats[MARKET].window.trades == 2
    assert ("trades between are missing" in caplog.text) is lagging
