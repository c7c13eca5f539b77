"""Candles around now: the bucket in progress, late and out-of-order trades, refreshes between.

Whatever the refresh policies have materialized when a trade is written - before it, behind
it, during the bucket it belongs to - klines show it as soon as the writer has written it.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg

from exchange.db import copy_batch
from exchange.db.rows import EntryRows
from exchange.history.queries import KLINE_INTERVALS, HistoryQueries, iso, to_ms

MARKET = "TATA_INR"
ORIGIN_MS = to_ms(datetime(2000, 1, 3, tzinfo=UTC))


def _trade(trade_id: int, ts_ms: int, price: int, quantity: int) -> tuple:
    return (trade_id, ts_ms, MARKET, str(price), str(quantity), str(price * quantity), True,
            2 * trade_id, 2 * trade_id + 1, "u1", "u2", trade_id)  # fmt: skip


def _reference(trades: list[tuple], interval: str) -> list[dict]:
    width, _, _ = KLINE_INTERVALS[interval]
    width_ms = width // timedelta(milliseconds=1)
    buckets: dict[int, list[tuple]] = defaultdict(list)
    for row in trades:
        buckets[ORIGIN_MS + (row[1] - ORIGIN_MS) // width_ms * width_ms].append(row)
    out = []
    for start in sorted(buckets):
        rows = sorted(buckets[start])
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        out.append(
            {
                "start": iso(epoch + timedelta(milliseconds=start)),
                "end": iso(epoch + timedelta(milliseconds=start + width_ms)),
                "open": rows[0][3],
                "high": str(max(int(r[3]) for r in rows)),
                "low": str(min(int(r[3]) for r in rows)),
                "close": rows[-1][3],
                "volume": str(sum(int(r[4]) for r in rows)),
                "quote_volume": str(sum(Decimal(r[5]) for r in rows)),
                "trades": len(rows),
            }
        )
    return out


async def test_candles_are_exact_whenever_trades_are_written(
    conn: psycopg.Connection, migrated_url: str, run_refresh_policies
) -> None:
    now_ms = to_ms(datetime.now(UTC))
    written: list[tuple] = []
    copy_batch.prepare_connection(conn)

    async def write_and_check(*trades: tuple) -> None:
        copy_batch.write_rows(conn, EntryRows(list(trades), []))
        written.extend(trades)
        async with HistoryQueries(migrated_url) as history:
            for interval in KLINE_INTERVALS:
                got = await history.klines(MARKET, interval, None, None, 1000)
                assert got == _reference(written, interval), (interval, trades)

    next_id = iter(range(1, 10_000))
    # The bucket in progress, before any refresh and after one.
    await write_and_check(_trade(next(next_id), now_ms, 100, 1))
    run_refresh_policies()
    await write_and_check(_trade(next(next_id), now_ms + 1, 101, 2))
    # History in the past, newest first: each batch lies behind what was refreshed before it.
    for days in (1, 3, 9):
        then = now_ms - days * 86_400_000
        await write_and_check(
            _trade(next(next_id), then, 90 + days, 3), _trade(next(next_id), then + 61_000, 95, 1)
        )
        run_refresh_policies()
    # Late trades: minutes and hours behind the newest, in a minute and hour already
    # materialized, and out of order within one batch (ids say which came first).
    await write_and_check(
        _trade(next(next_id), now_ms - 5 * 60_000, 120, 4),
        _trade(next(next_id), now_ms - 3 * 3_600_000, 80, 5),
        _trade(next(next_id), now_ms - 5 * 60_000 - 30_000, 121, 1),
    )
    run_refresh_policies()
    await write_and_check(_trade(next(next_id), now_ms - 2 * 60_000, 99, 7))
    run_refresh_policies()
    # The newest minute once more, after all of that.
    await write_and_check(_trade(next(next_id), to_ms(datetime.now(UTC)), 105, 1))
