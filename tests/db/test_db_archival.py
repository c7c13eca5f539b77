"""History archival: compressed chunks read the same; retention drops trades, keeps candles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from db_events import make_events

from exchange.db import archival, copy_batch
from exchange.db.rows import EntryRows, decode_entry, merge
from exchange.errors import ConfigError
from exchange.history.queries import KLINE_INTERVALS, HistoryQueries, to_ms
from exchange.markets import MarketConfig
from exchange.settings import Settings

MARKETS = ["TATA_INR", "BTC_USDT"]


def _chunks(conn: psycopg.Connection, table: str) -> tuple[int, int]:
    """(chunks, compressed chunks) of a hypertable."""
    return conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE is_compressed)"
        " FROM timescaledb_information.chunks WHERE hypertable_name = %s",
        [table],
    ).fetchone()


async def _everything(url: str, rows: EntryRows, now: datetime) -> dict:
    """What the API and the ws seed read, for every market, interval and a few users."""
    users = sorted({row[16] for row in rows.orders})[:5]
    orders = [(row[16], row[0]) for row in rows.orders[:: max(1, len(rows.orders) // 20)]]
    async with HistoryQueries(url) as history:
        out = {
            "trades": [await history.recent_trades(m, 200) for m in MARKETS],
            "klines": [
                await history.klines(m, interval, None, None, 1000)
                for m in MARKETS
                for interval in KLINE_INTERVALS
            ],
            "tickers": await history.tickers(MARKETS, now=now),
            "history": [await history.order_history(u, None, 100) for u in users],
            "fills": [await history.fills(u, None, 100) for u in users],
            "orders": [await history.order(u, order_id=o) for u, o in orders],
            "seed": await history.stats_seed(MARKETS, to_ms(now - timedelta(days=1))),
        }
    assert all(out["trades"]) and all(out["history"]) and all(out["orders"])
    return out


def _events(config: MarketConfig, commands: int) -> EntryRows:
    log = make_events(config, seed=11, commands=commands)
    return merge(decode_entry({b"events": entry}, config) for entry in log.entries)


async def test_compressed_history_reads_the_same(
    config: MarketConfig,
    conn: psycopg.Connection,
    migrated_url: str,
    timescaledb_only: None,
    run_jobs,
) -> None:
    rows = _events(config, 3000)  # stamped in November 2023: all chunks are old
    copy_batch.prepare_connection(conn)
    copy_batch.write_rows(conn, rows)
    now = max(datetime.fromtimestamp(row[1] / 1000, UTC) for row in rows.trades)
    before = await _everything(migrated_url, rows, now)

    settings = Settings(database_url=migrated_url, history_compress_after_days=7)
    archival.configure(migrated_url, settings, timescaledb=True)
    assert run_jobs("policy_compression") == 2
    for table in ("trades", "orders"):
        chunks, compressed = _chunks(conn, table)
        assert chunks >= 1 and compressed == chunks, table

    assert await _everything(migrated_url, rows, now) == before

    # The writer's upserts still work into compressed chunks: a redelivered batch changes
    # nothing, an order's newer state replaces the old one.
    copy_batch.write_rows(conn, rows)
    assert await _everything(migrated_url, rows, now) == before
    order = rows.orders[0]
    newer = (
        *order[:10],
        "cancelled",
        *order[11:15],
        order[15] + 1,
        order[16],
        order[17] + 1,
        *order[18:],
    )
    copy_batch.write_rows(conn, EntryRows([], [newer]))
    async with HistoryQueries(migrated_url) as history:
        stored = await history.order(order[16], order_id=order[0])
    assert stored["status"] == "cancelled" and stored["updated_at"] == order[15] + 1
    assert (
        conn.execute("SELECT count(*) FROM orders WHERE order_id = %s", [order[0]]).fetchone()[0]
        == 1
    )


async def test_retention_drops_old_trades_and_keeps_candles(
    config: MarketConfig,
    conn: psycopg.Connection,
    migrated_url: str,
    timescaledb_only: None,
    run_jobs,
    run_refresh_policies,
) -> None:
    rows = _events(config, 1500)
    # The same trades spread over the last 20 days, oldest first, as a writer catching up.
    start = datetime.now(UTC) - timedelta(days=20)
    step = timedelta(days=19) / len(rows.trades)
    spread = [(row[0], to_ms(start + step * n), *row[2:]) for n, row in enumerate(rows.trades)]
    copy_batch.prepare_connection(conn)
    for first in range(0, len(spread), 100):
        copy_batch.write_rows(conn, EntryRows(spread[first : first + 100], []))
    run_refresh_policies()
    async with HistoryQueries(migrated_url) as history:
        candles = [
            await history.klines(m, interval, None, None, 1000)
            for m in MARKETS
            for interval in KLINE_INTERVALS
        ]
    assert all(candles)

    settings = Settings(database_url=migrated_url, history_retain_days=7)
    assert archival.configure(migrated_url, settings, timescaledb=True).retain_for.days == 7
    assert run_jobs("policy_retention") == 1
    oldest = conn.execute("SELECT min(time) FROM trades").fetchone()[0]
    assert datetime.now(UTC) - timedelta(days=8) < oldest < datetime.now(UTC) - timedelta(days=6)
    kept = conn.execute("SELECT count(*) FROM trades").fetchone()[0]
    assert 0 < kept < len(spread) / 2

    run_refresh_policies()  # they start at the retention age: the old candles stay
    async with HistoryQueries(migrated_url) as history:
        after = [
            await history.klines(m, interval, None, None, 1000)
            for m in MARKETS
            for interval in KLINE_INTERVALS
        ]
    assert after == candles


def test_archival_defaults_and_limits() -> None:
    on_timescale = archival.plan(Settings(), timescaledb=True)
    assert on_timescale == archival.Archival(timedelta(days=7), None)
    assert archival.plan(Settings(history_compress_after_days=0), timescaledb=True) == (
        archival.Archival(None, None)
    )
    assert archival.plan(Settings(), timescaledb=False) == archival.Archival(None, None)
    with pytest.raises(ConfigError, match="at least 3"):
        archival.plan(Settings(history_retain_days=2), timescaledb=True)


@pytest.mark.parametrize(
    "settings",
    [Settings(history_retain_days=30), Settings(history_compress_after_days=7)],
    ids=["retention", "compression"],
)
def test_plain_postgresql_refuses_archival(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="need TimescaleDB"):
        archival.plan(settings, timescaledb=False)
