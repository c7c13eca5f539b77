"""The db writer against real Redis and PostgreSQL: idempotence, claims, outages, bad entries."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import attrs
import orjson
import psycopg
import pytest
import redis
import trio
from db_events import EventLog, make_events, xadd_entries

from exchange import names
from exchange.db import consumer, program
from exchange.db.migrate import migrate
from exchange.dev.localservers import PostgresServer
from exchange.history.queries import HistoryQueries
from exchange.history.statements import CANDLE_TABLES
from exchange.markets import MarketConfig
from exchange.settings import Settings

WAIT_S = 60


@pytest.fixture(scope="module")
def events(config: MarketConfig) -> EventLog:
    return make_events(config, seed=11, commands=1500, batch_commands=40, users=20)


def _redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url)


async def _wait_for(predicate, what: str) -> None:
    """Poll ``predicate()`` (run in a thread) until true; fail after WAIT_S."""
    with trio.fail_after(WAIT_S):
        while not await trio.to_thread.run_sync(predicate):
            await trio.sleep(0.02)


def _drained(settings: Settings) -> bool:
    """Every entry of the stream delivered to the group and acknowledged."""
    client = _redis(settings)
    try:
        groups = client.xinfo_groups(names.EVENT_STREAM)
    except redis.ResponseError:
        return False
    finally:
        client.close()
    return any(
        group["name"] == consumer.EVENTS_GROUP.encode()
        and group["pending"] == 0
        and group["lag"] == 0
        for group in groups
    )


def trade_totals(url: str) -> dict[str, tuple[int, Decimal]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT market, count(*), sum(quantity) FROM trades GROUP BY market")
        return {market: (count, total) for market, count, total in rows}


def table_counts(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        trades = conn.execute("SELECT count(*) FROM trades").fetchone()[0]
        orders = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    return trades, orders


async def assert_tables_equal_events(url: str, log: EventLog) -> None:
    """Trades: count and quantity per market; orders: every field of each order's last state."""
    assert trade_totals(url) == log.trade_totals()
    assert table_counts(url) == (len(log.trades), len(log.orders))
    async with HistoryQueries(url) as queries:
        for order_id, expected in log.orders.items():
            user_id = expected_user(log, order_id)
            stored = await queries.order(user_id, order_id=order_id)
            assert stored is not None
            stored.pop("fills")
            wanted = dict(expected)
            if not (wanted["type"] == "market" and wanted["side"] == "buy"):
                wanted.pop("quote_quantity")
            assert stored == wanted


def expected_user(log: EventLog, order_id: int) -> str:
    return log.users[order_id]


async def run_until_drained(settings: Settings) -> consumer.WriterStats:
    async with trio.open_nursery() as nursery:
        stats = await nursery.start(program.run, settings)
        await _wait_for(lambda: _drained(settings), "drained")
        nursery.cancel_scope.cancel()
    return stats


async def test_events_are_written(writer_settings: Settings, events: EventLog) -> None:
    xadd_entries(_redis(writer_settings), events.entries)
    stats = await run_until_drained(writer_settings)
    assert stats.entries == len(events.entries)
    assert stats.dead == 0
    await assert_tables_equal_events(writer_settings.database_url, events)


def candle_totals(url: str, table: str) -> dict[str, tuple[int, Decimal]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            f"SELECT market, sum(trade_count), sum(volume) FROM {table} GROUP BY market"
        )
        return {market: (int(count), total) for market, count, total in rows}


async def test_a_past_dated_backlog_settles_its_candles_in_bulk(
    writer_settings: Settings, config: MarketConfig
) -> None:
    """Dozens of batches of trades from the past (behind every candle horizon) cost about one
    candles settle a second, not one each, and the candles then hold every trade."""
    log = make_events(config, seed=12, commands=1500, batch_commands=5, users=20)
    xadd_entries(_redis(writer_settings), log.entries)
    batches = len(log.entries) / writer_settings.db_read_count
    url = writer_settings.database_url

    def settled() -> bool:
        return all(candle_totals(url, table) == log.trade_totals() for table in CANDLE_TABLES)

    async with trio.open_nursery() as nursery:
        started = time.monotonic()
        stats = await nursery.start(program.run, writer_settings)
        await _wait_for(lambda: _drained(writer_settings), "drained")
        elapsed = time.monotonic() - started
        # (A last batch as long as db_read_count is settled once no batch follows it.)
        await _wait_for(lambda: stats.settles and settled(), "every trade in the candles")
        nursery.cancel_scope.cancel()
    assert batches > 30
    assert 1 <= stats.settles <= elapsed / consumer.SETTLE_INTERVAL_S + 2 < batches


async def test_same_events_twice_give_one_row_each(
    writer_settings: Settings, events: EventLog
) -> None:
    client = _redis(writer_settings)
    xadd_entries(client, events.entries)
    await run_until_drained(writer_settings)
    # Redelivered (the same payloads again under new ids) and then an engine replay of the
    # second half, while the writer runs.
    async with trio.open_nursery() as nursery:
        await nursery.start(program.run, writer_settings)
        xadd_entries(client, events.entries)
        xadd_entries(client, events.entries[len(events.entries) // 2 :])
        await _wait_for(lambda: _drained(writer_settings), "drained")
        nursery.cancel_scope.cancel()
    await assert_tables_equal_events(writer_settings.database_url, events)


async def test_older_order_state_never_replaces_a_newer_one(
    writer_settings: Settings, events: EventLog
) -> None:
    # Every entry in reverse order: each order's oldest state arrives last.
    xadd_entries(_redis(writer_settings), list(reversed(events.entries)))
    await run_until_drained(writer_settings)
    await assert_tables_equal_events(writer_settings.database_url, events)


async def test_pending_entries_of_a_dead_consumer_are_claimed(
    writer_settings: Settings, events: EventLog
) -> None:
    client = _redis(writer_settings)
    xadd_entries(client, events.entries)
    client.xgroup_create(names.EVENT_STREAM, consumer.EVENTS_GROUP, id="0")
    # Another writer read a third of the entries, then died without acknowledging them.
    taken = client.xreadgroup(
        consumer.EVENTS_GROUP,
        "dead-writer",
        {names.EVENT_STREAM: ">"},
        count=len(events.entries) // 3,
    )
    assert len(taken[0][1]) == len(events.entries) // 3
    await run_until_drained(writer_settings)
    await assert_tables_equal_events(writer_settings.database_url, events)


async def test_own_pending_entries_are_written_after_a_restart(
    writer_settings: Settings, events: EventLog
) -> None:
    client = _redis(writer_settings)
    xadd_entries(client, events.entries)
    client.xgroup_create(names.EVENT_STREAM, consumer.EVENTS_GROUP, id="0")
    # This consumer read everything before its last run died: nothing would arrive as new.
    client.xreadgroup(consumer.EVENTS_GROUP, writer_settings.db_consumer, {names.EVENT_STREAM: ">"})
    settings = Settings(
        redis_url=writer_settings.redis_url,
        database_url=writer_settings.database_url,
        db_claim_idle_s=3600.0,  # no claiming: only the own-pending path can find them
    )
    await run_until_drained(settings)
    await assert_tables_equal_events(writer_settings.database_url, events)


async def test_written_entries_are_trimmed_but_never_pending_ones(
    writer_settings: Settings, events: EventLog
) -> None:
    client = _redis(writer_settings)
    ids = xadd_entries(client, events.entries)
    skipped = 7  # the group starts after these: nobody needs them
    client.xgroup_create(names.EVENT_STREAM, consumer.EVENTS_GROUP, id=ids[skipped - 1])
    # A live peer holds the next 5 entries (pending, not idle long enough to be claimed).
    held = client.xreadgroup(consumer.EVENTS_GROUP, "peer", {names.EVENT_STREAM: ">"}, count=5)
    settings = attrs.evolve(writer_settings, db_claim_idle_s=3600.0)
    async with trio.open_nursery() as nursery:
        stats = await nursery.start(program.run, settings)
        await _wait_for(lambda: stats.entries == len(ids) - skipped - 5, "the rest written")
        # Trimmed up to the peer's oldest pending entry, and no further.
        await _wait_for(lambda: stats.trimmed == skipped, "trimmed to the pending entries")
        assert client.xrange(names.EVENT_STREAM, count=1)[0][0] == ids[skipped]
        assert client.xlen(names.EVENT_STREAM) == len(ids) - skipped
        client.xack(names.EVENT_STREAM, consumer.EVENTS_GROUP, *[i for i, _ in held[0][1]])
        await _wait_for(lambda: client.xlen(names.EVENT_STREAM) == 0, "everything trimmed")
        nursery.cancel_scope.cancel()
    assert stats.trimmed == len(ids)


def test_the_trim_bound_survives_pending_entries_acknowledged_meanwhile(
    writer_settings: Settings, events: EventLog
) -> None:
    """XINFO GROUPS said "pending", and the entries were acknowledged before XPENDING was asked
    (the writer's own XACK racing its trimmer): the bound is the entry after the last delivered,
    not a crash of the writer."""
    client = _redis(writer_settings)
    ids = xadd_entries(client, events.entries[:6])
    client.xgroup_create(names.EVENT_STREAM, consumer.EVENTS_GROUP, id="0")
    client.xreadgroup(consumer.EVENTS_GROUP, "w", {names.EVENT_STREAM: ">"}, count=4)
    groups = client.xinfo_groups(names.EVENT_STREAM)
    assert groups[0]["pending"] == 4
    client.xack(names.EVENT_STREAM, consumer.EVENTS_GROUP, *ids[:4])
    ms, sequence = names.parse_id(ids[3])
    assert consumer.oldest_needed(client, groups) == (ms, sequence + 1)
    # And while they are pending, the oldest of them.
    client.xreadgroup(consumer.EVENTS_GROUP, "w", {names.EVENT_STREAM: ">"}, count=1)
    assert consumer.oldest_needed(client, client.xinfo_groups(names.EVENT_STREAM)) == (
        names.parse_id(ids[4])
    )


async def test_bad_entries_go_to_the_dead_letter_stream(
    writer_settings: Settings, events: EventLog
) -> None:
    client = _redis(writer_settings)
    good = events.entries[:10]
    trade = next(e for entry in good for e in orjson.loads(entry) if e["record"] == "TradeExecuted")
    # decodes, but PostgreSQL refuses it (an order id beyond bigint)
    refused = dict(trade, trade_id=10**9, buy_order_id=2**63)
    entries = [
        good[0],
        b"{not json",
        *good[1:5],
        orjson.dumps([refused]),
        orjson.dumps([{"type": "trade"}]),
        *good[5:],
    ]
    xadd_entries(client, entries)
    stats = await run_until_drained(writer_settings)
    assert stats.dead == 3
    dead = client.xrange(consumer.DEAD_LETTER_STREAM)
    assert sorted(fields[names.EVENTS_FIELD] for _, fields in dead) == sorted(
        [b"{not json", orjson.dumps([refused]), orjson.dumps([{"type": "trade"}])]
    )
    assert all(b"error" in fields for _, fields in dead)
    with psycopg.connect(writer_settings.database_url) as conn:
        assert (
            conn.execute("SELECT count(*) FROM trades WHERE id = %s", (10**9,)).fetchone()[0] == 0
        )
    expected = make_expected(events, good)
    assert trade_totals(writer_settings.database_url) == expected.trade_totals()


def make_expected(events: EventLog, entries: list[bytes]) -> EventLog:
    """The EventLog of a subset of the entries."""
    log = EventLog()
    for payload in entries:
        for event in orjson.loads(payload):
            if event["record"] == "TradeExecuted":
                log.trades[event["trade_id"]] = events.trades[event["trade_id"]]
    return log


@pytest.mark.slow
async def test_postgres_down_and_back_during_a_flow(
    redis_url: str, tmp_path: Path, events: EventLog
) -> None:
    # A private server: stopping the session's would disturb other tests.
    with PostgresServer.start(tmp_path / "pg", fsync=False) as server:
        url = server.create_database("flow")
        migrate(url)
        settings = Settings(redis_url=redis_url, database_url=url, db_read_count=4)
        client = redis.Redis.from_url(redis_url)
        first, second, third = (
            events.entries[:20],
            events.entries[20:-10],
            events.entries[-10:],
        )
        async with trio.open_nursery() as nursery:
            stats = await nursery.start(program.run, settings)
            xadd_entries(client, first)
            await _wait_for(lambda: stats.entries == len(first), "first part written")
            await trio.to_thread.run_sync(server.stop)
            xadd_entries(client, second)
            # The writer is stuck on the batch in hand; the rest waits in Redis.
            await trio.sleep(0.5)
            assert stats.entries == len(first)
            await trio.to_thread.run_sync(server.restart)
            xadd_entries(client, third)
            await _wait_for(lambda: _drained(settings), "drained")
            nursery.cancel_scope.cancel()
        await assert_tables_equal_events(url, events)
