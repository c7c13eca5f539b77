"""Klines and tickers by SQL equal the same computed in Python from the same random trades."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext

import psycopg
import pytest

from exchange.db import copy_batch
from exchange.db.rows import EntryRows
from exchange.history.queries import KLINE_INTERVALS, HistoryQueries, iso, to_ms
from exchange.money import format_decimal

ORIGIN_MS = to_ms(datetime(2000, 1, 3, tzinfo=UTC))  # TimescaleDB's origin: a Monday
START = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday
SPAN = timedelta(weeks=5)
MARKETS = ("TATA_INR", "BTC_USDT")
WIDTH_MS = {
    name: to_ms(START + width) - to_ms(START) for name, (width, _, _) in KLINE_INTERVALS.items()
}


def _dt(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def _random_trades(seed: int) -> list[tuple]:
    """Trade rows (staging column order), ids in time order, with bursts and bucket edges."""
    rng = random.Random(seed)
    start_ms, span_ms = to_ms(START), to_ms(START + SPAN) - to_ms(START)
    times = [start_ms + rng.randrange(span_ms) for _ in range(2500)]
    for _ in range(4):  # bursts: many trades in a few minutes, several per millisecond
        burst = start_ms + rng.randrange(span_ms)
        times += [burst + rng.randrange(7 * 60_000) for _ in range(150)]
        times += [burst] * 5
    for edge_ms in (WIDTH_MS["1w"], WIDTH_MS["1d"], WIDTH_MS["4h"], WIDTH_MS["1h"]):
        for edge in range(start_ms, start_ms + span_ms, edge_ms):
            if rng.random() < 0.5:
                times += [edge, edge - 1]
    times.sort()
    rows = []
    for trade_id, ts in enumerate(times, start=1):
        market = rng.choice(MARKETS)
        if market == "TATA_INR":
            price = Decimal(rng.randint(9_000, 11_000)).scaleb(-2)
            quantity = Decimal(rng.randint(1, 5_000)).scaleb(-2)
        else:
            price = Decimal(rng.randint(2_900_000, 3_100_000)).scaleb(-2)
            quantity = Decimal(rng.randint(1, 100_000)).scaleb(-5)
        rows.append(
            (
                trade_id,
                ts,
                market,
                format_decimal(price),
                format_decimal(quantity),
                format_decimal(price * quantity),
                rng.random() < 0.5,
                10 * trade_id,
                10 * trade_id + 1,
                f"u{rng.randrange(20)}",
                f"u{rng.randrange(20, 40)}",
                trade_id,
            )
        )
    return rows


TRADES = _random_trades(seed=42)


def _ref_klines(market: str, interval: str) -> list[dict]:
    """Candles of one market and interval, ascending, computed trade by trade."""
    width = WIDTH_MS[interval]
    buckets: dict[int, list[tuple]] = defaultdict(list)
    for row in TRADES:
        if row[2] == market:
            buckets[ORIGIN_MS + (row[1] - ORIGIN_MS) // width * width].append(row)
    out = []
    for start in sorted(buckets):
        rows = sorted(buckets[start])  # by id
        prices = [Decimal(row[3]) for row in rows]
        out.append(
            {
                "start": iso(_dt(start)),
                "end": iso(_dt(start + width)),
                "open": rows[0][3],
                "high": format_decimal(max(prices)),
                "low": format_decimal(min(prices)),
                "close": rows[-1][3],
                "volume": format_decimal(sum(Decimal(row[4]) for row in rows)),
                "quote_volume": format_decimal(sum(Decimal(row[5]) for row in rows)),
                "trades": len(rows),
                "_start_ms": start,
            }
        )
    return out


def _public(candles: list[dict]) -> list[dict]:
    return [{k: v for k, v in candle.items() if not k.startswith("_")} for candle in candles]


@pytest.fixture
async def queries(conn: psycopg.Connection, migrated_url: str, run_refresh_policies):
    """The random trades written by the writer's own statement, in shuffled batches, twice over
    in part (duplicates must not count twice in the candles). With TimescaleDB the refresh
    policies run between batches, so most trades are written behind the watermark they set."""
    rng = random.Random(7)
    shuffled = list(TRADES)
    rng.shuffle(shuffled)
    chunks = [shuffled[i : i + 300] for i in range(0, len(shuffled), 300)]
    copy_batch.prepare_connection(conn)
    for number, chunk in enumerate([*chunks, chunks[0], chunks[3]]):
        copy_batch.write_rows(conn, EntryRows(chunk, []))
        if number % 4 == 1:
            run_refresh_policies()
    async with HistoryQueries(migrated_url) as history:
        yield history


@pytest.mark.parametrize("interval", list(KLINE_INTERVALS))
async def test_klines_equal_python_candles(queries: HistoryQueries, interval: str) -> None:
    rng = random.Random(interval)
    width = WIDTH_MS[interval]
    for market in MARKETS:
        ref = _ref_klines(market, interval)
        assert len(ref) > 3
        # Latest buckets.
        assert await queries.klines(market, interval, None, None, 1000) == _public(ref[-1000:])
        assert await queries.klines(market, interval, None, None, 3) == _public(ref[-3:])
        # From a start time: on a bucket edge, 1 ms before and after one, anywhere.
        picks = [ref[len(ref) // 2]["_start_ms"], ref[1]["_start_ms"] - 1, ref[-2]["_start_ms"] + 1]
        picks += [
            to_ms(START) + rng.randrange(to_ms(START + SPAN) - to_ms(START)) for _ in range(3)
        ]
        for start_ms in picks:
            start = _dt(start_ms)
            first = ORIGIN_MS + (start_ms - ORIGIN_MS) // width * width
            after = [c for c in ref if c["_start_ms"] >= first]
            for limit in (1, 5, 1000):
                got = await queries.klines(market, interval, start, None, limit)
                assert got == _public(after[:limit]), (market, interval, start, limit)
            # end_time keeps buckets starting at or before it (an edge exactly is kept).
            end_ms = after[min(4, len(after) - 1)]["_start_ms"] if after else start_ms
            end = _dt(end_ms)
            kept = [c for c in after if c["_start_ms"] <= end_ms]
            assert await queries.klines(market, interval, start, end, 1000) == _public(kept)
            before = [c for c in ref if c["_start_ms"] <= end_ms]
            assert await queries.klines(market, interval, None, end, 2) == _public(before[-2:])
    later = START + SPAN + timedelta(weeks=2)
    assert await queries.klines(MARKETS[0], interval, later, None, 10) == []
    assert await queries.klines("NOPE_INR", interval, None, None, 10) == []


async def test_unknown_interval_is_refused(queries: HistoryQueries) -> None:
    with pytest.raises(ValueError, match="interval"):
        await queries.klines(MARKETS[0], "2m", None, None, 10)


def _ref_ticker(market: str, now_ms: int) -> dict:
    rows = sorted(r for r in TRADES if r[2] == market and now_ms - 86_400_000 < r[1] <= now_ms)
    if not rows:
        return {
            "market": market,
            **dict.fromkeys(
                ("first_price", "last_price", "price_change", "price_change_percent", "high", "low")
            ),
            "volume": "0",
            "quote_volume": "0",
            "trades": 0,
        }
    first, last = Decimal(rows[0][3]), Decimal(rows[-1][3])
    prices = [Decimal(r[3]) for r in rows]
    with localcontext() as ctx:
        ctx.prec = 60
        percent = ((last - first) * 100 / first).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return {
        "market": market,
        "first_price": rows[0][3],
        "last_price": rows[-1][3],
        "price_change": format_decimal(last - first),
        "price_change_percent": format_decimal(percent),
        "high": format_decimal(max(prices)),
        "low": format_decimal(min(prices)),
        "volume": format_decimal(sum(Decimal(r[4]) for r in rows)),
        "quote_volume": format_decimal(sum(Decimal(r[5]) for r in rows)),
        "trades": len(rows),
    }


async def test_tickers_equal_python_over_the_24h_window(queries: HistoryQueries) -> None:
    rng = random.Random(3)
    some = [row[1] for row in rng.sample(TRADES, 6)]
    nows = [
        TRADES[-1][1],  # the newest trade is in the window
        *some,  # a trade exactly at now: in
        *(ts + 86_400_000 for ts in some),  # a trade exactly 24 h before now: out
        *(to_ms(START) + rng.randrange(to_ms(START + SPAN) - to_ms(START)) for _ in range(6)),
        to_ms(START + timedelta(days=2, hours=3)),  # minute edges at both ends
        to_ms(START) - 1,  # before any trade
        to_ms(START + SPAN + timedelta(days=3)),  # after all of them
    ]
    for now_ms in nows:
        now = _dt(now_ms)
        got = await queries.tickers(list(MARKETS) + ["NOPE_INR"], now=now)
        assert got == [_ref_ticker(m, now_ms) for m in (*MARKETS, "NOPE_INR")], now
