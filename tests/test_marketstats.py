"""The ticker and kline math, directly (pure module)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from exchange.markets import load_config
from exchange.marketstats import (
    INTERVALS_MS,
    WINDOW_MS,
    KlineBuilder,
    MarketStats,
    StoredWindow,
    TickerWindow,
    Trade,
    bucket_start,
    fold,
    format_hundredths,
    percent_change,
    percent_change_text,
    summary,
)

MARKET = load_config().markets["TATA_INR"]
T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z, a Tuesday


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def trade(trade_id: int, price: int, lots: int, ts: int) -> Trade:
    return Trade(trade_id, price, lots, MARKET.quote_units(price, lots), ts)


def test_buckets_follow_timescale_time_bucket() -> None:
    assert bucket_start(ms("2024-01-01T10:07:59.999"), INTERVALS_MS["5m"]) == ms("2024-01-01T10:05")
    assert bucket_start(ms("2024-01-01T03:59:00"), INTERVALS_MS["4h"]) == ms("2024-01-01T00:00")
    assert bucket_start(ms("2024-01-01T23:59:00"), INTERVALS_MS["1d"]) == ms("2024-01-01T00:00")
    # Weeks start on Monday: 2024-01-07 is a Sunday, 2024-01-08 a Monday.
    assert bucket_start(ms("2024-01-07T23:00"), INTERVALS_MS["1w"]) == ms("2024-01-01T00:00")
    assert bucket_start(ms("2024-01-08T00:00"), INTERVALS_MS["1w"]) == ms("2024-01-08T00:00")
    assert bucket_start(ms("1999-12-30T12:00"), INTERVALS_MS["1w"]) == ms("1999-12-27T00:00")


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [
        (10_000, 10_000, "0"),
        (10_000, 10_150, "1.5"),
        (30_000, 30_001, "0"),  # 0.00333 %
        (20_000, 20_001, "0.01"),  # 0.005 % rounds half up
        (20_000, 19_999, "-0.01"),  # and half away from zero below
        (3, 4, "33.33"),
        (3, 2, "-33.33"),
        (8, 9, "12.5"),
        (1, 1000, "99900"),
    ],
)
def test_percent_change_rounds_half_up_exactly(first: int, last: int, expected: str) -> None:
    hundredths, _ = percent_change(first, last)
    assert format_hundredths(hundredths) == expected


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [
        ("200", "201", "0.5"),
        ("0.2", "0.201", "0.5"),
        ("1E+3", "2E+3", "100"),
        ("8", "7.9996", "-0.01"),
    ],
)
def test_percent_change_of_decimals_is_the_same_rule(first: str, last: str, expected: str) -> None:
    """REST's tickers (decimal prices from PostgreSQL) use the integer rule above."""
    assert percent_change_text(Decimal(first), Decimal(last)) == expected


def test_ticker_window_sums_extremes_and_expiry() -> None:
    window = TickerWindow()
    window.add(trade(1, 100, 2, T0))
    window.add(trade(2, 150, 1, T0 + 10))  # same second: same bucket
    window.add(trade(3, 90, 3, T0 + 5_000))
    window.add(trade(3, 1, 1, T0 + 5_000))  # replayed id: ignored
    summary = window.summary()
    assert summary == {
        "first": 100,
        "last": 90,
        "high": 150,
        "low": 90,
        "volume": 6,
        "quote_volume": MARKET.quote_units(100, 2)
        + MARKET.quote_units(150, 1)
        + MARKET.quote_units(90, 3),
        "trades": 3,
    }
    # 24 h later the first second's bucket leaves: high falls back to the later trades.
    window.add(trade(4, 95, 1, T0 + WINDOW_MS + 1_000))
    summary = window.summary()
    assert (summary["first"], summary["high"], summary["low"], summary["trades"]) == (90, 95, 90, 2)
    assert summary["volume"] == 4
    window.expire(T0 + 2 * WINDOW_MS + 10_000)
    assert window.summary()["first"] is None and window.summary()["trades"] == 0


def test_ticker_window_matches_a_naive_reference() -> None:
    import random

    rng = random.Random(7)
    window = TickerWindow()
    trades: list[Trade] = []
    ts = T0
    for trade_id in range(1, 3000):
        ts += rng.choice((0, 3, 400, 60_000, 3_600_000))
        new = trade(trade_id, rng.randint(1, 500), rng.randint(1, 9), ts)
        trades.append(new)
        window.add(new)
        oldest = (ts - WINDOW_MS) // 1000
        live = [t for t in trades if t.timestamp_ms // 1000 >= oldest]
        summary = window.summary()
        assert summary["first"] == live[0].price_ticks
        assert summary["last"] == live[-1].price_ticks
        assert summary["high"] == max(t.price_ticks for t in live)
        assert summary["low"] == min(t.price_ticks for t in live)
        assert summary["volume"] == sum(t.quantity_lots for t in live)
        assert summary["trades"] == len(live)


def test_kline_builder_rolls_buckets() -> None:
    builder = KlineBuilder(INTERVALS_MS["1m"])
    start = ms("2024-01-01T00:00")
    builder.add(trade(1, 100, 1, start + 1_000))
    builder.add(trade(2, 120, 2, start + 2_000))
    kline = builder.add(trade(3, 90, 1, start + 59_999))
    assert (kline.start_ms, kline.open, kline.high, kline.low, kline.close) == (
        start,
        100,
        120,
        90,
        90,
    )
    assert (kline.volume, kline.trades) == (4, 3)
    kline = builder.add(trade(4, 95, 5, start + 60_000))
    assert (kline.start_ms, kline.open, kline.high, kline.volume, kline.trades) == (
        start + 60_000,
        95,
        95,
        5,
        1,
    )


def test_market_stats_json_is_exact_decimal_text() -> None:
    stats = MarketStats(MARKET)
    assert stats.ticker_json()["last_price"] is None
    start = ms("2024-01-01T00:00")
    stats.add(trade(1, 10_000, 150, start + 1_000))  # 100.00 × 1.5
    stats.add(trade(2, 9_950, 50, start + 2_000))  # 99.50 × 0.5
    assert stats.ticker_json() == {
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
    assert stats.kline_json("1h") == {
        "start": "2024-01-01T00:00:00Z",
        "end": "2024-01-01T01:00:00Z",
        "open": "100",
        "high": "100",
        "low": "99.5",
        "close": "99.5",
        "volume": "2",
        "quote_volume": "199.75",
        "trades": 2,
    }
    assert not stats.add(trade(2, 1, 1, start + 3_000))  # replay


def test_the_live_window_is_the_fold_of_its_buckets() -> None:
    """TickerWindow's O(1) figures equal folding its buckets (what REST does with stored ones),
    and any grouping of the pieces folds to the same candle."""
    import random

    rng = random.Random(11)
    window = TickerWindow()
    ts = T0
    for trade_id in range(1, 2000):
        ts += rng.choice((0, 3, 400, 1_000, 60_000, 3_600_000))
        window.add(trade(trade_id, rng.randint(1, 500), rng.randint(1, 9), ts))
        buckets = window.buckets()
        assert window.summary() == summary(fold(buckets))
    halves = [fold(buckets[::2]), fold(buckets[1::2])]
    assert summary(fold(reversed([h for h in halves if h is not None]))) == window.summary()
    assert summary(fold([])) == TickerWindow().summary()


@pytest.mark.parametrize(
    "until",
    [
        "2024-01-01T00:00:00",
        "2024-01-01T00:00:00.001",
        "2024-01-01T13:59:59.999",
        "2024-01-01T13:30:00",
    ],
)
def test_the_stored_window_cuts_the_24_hours_into_whole_candles(until: str) -> None:
    """Raw edges under a minute, minute candles within the partial hours, hour candles between:
    together exactly (until - 24 h, until]."""
    cut = StoredWindow.ending(ms(until))
    assert cut.since_ms == cut.until_ms - WINDOW_MS
    assert 0 < cut.first_minute - cut.since_ms <= 60_000 and cut.first_minute % 60_000 == 0
    assert 0 <= cut.until_ms - cut.last_minute < 60_000 and cut.last_minute % 60_000 == 0
    assert cut.first_minute <= cut.first_hour <= cut.last_hour <= cut.last_minute
    assert cut.first_hour % 3_600_000 == 0 and cut.last_hour % 3_600_000 == 0
    assert cut.first_hour - cut.first_minute < 3_600_000
    assert cut.last_minute - cut.last_hour < 3_600_000
