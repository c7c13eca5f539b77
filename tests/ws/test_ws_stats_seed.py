"""Seeding the ticker window and klines from stored history (pure), and holding messages."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import orjson
import pytest
from ws_helpers import trade as engine_trade

from exchange import codec
from exchange.markets import load_config
from exchange.marketstats import (
    BUCKET_MS,
    INTERVALS_MS,
    WINDOW_MS,
    KlineBuilder,
    MarketStats,
    TickerWindow,
    Trade,
    bucket_from_row,
    bucket_start,
    kline_from_row,
)
from exchange.money import MoneyError
from exchange.names import market_channel, user_channel
from exchange.surfaces.native.ws_topics import NativeTopics
from exchange.ws.hub import Hub
from exchange.ws.seed import first_trade_id

CONFIG = load_config()
MARKET = CONFIG.markets["TATA_INR"]
T0 = 1_700_000_000_000


def trade(trade_id: int, price: int, lots: int, ts: int) -> Trade:
    return Trade(trade_id, price, lots, MARKET.quote_units(price, lots), ts)


def _price(ticks: int) -> Decimal:
    return ticks * MARKET.tick_size


def _row(trades: list[Trade], start_ms: int) -> dict[str, Any]:
    """What PostgreSQL returns for these trades (Decimal money, as stored)."""
    return {
        "start_ms": start_ms,
        "open": _price(trades[0].price_ticks),
        "high": _price(max(t.price_ticks for t in trades)),
        "low": _price(min(t.price_ticks for t in trades)),
        "close": _price(trades[-1].price_ticks),
        "volume": sum(t.quantity_lots for t in trades) * MARKET.lot_size,
        "quote_volume": Decimal(sum(t.quote_units for t in trades)).scaleb(-MARKET.quote.decimals),
        "trades": len(trades),
        "first_id": trades[0].trade_id,
        "last_id": trades[-1].trade_id,
    }


def seconds_rows(trades: list[Trade], now_ms: int) -> list[dict[str, Any]]:
    """The TICKER_SECONDS rows of ``trades`` since the window's oldest second at ``now_ms``."""
    since = (now_ms - WINDOW_MS) // BUCKET_MS * BUCKET_MS
    by_second: dict[int, list[Trade]] = {}
    for t in trades:
        if t.timestamp_ms >= since:
            by_second.setdefault(t.timestamp_ms // BUCKET_MS * BUCKET_MS, []).append(t)
    return [_row(group, start) for start, group in sorted(by_second.items())]


def latest_klines(trades: list[Trade]) -> dict[str, dict[str, Any]]:
    """The latest bucket of every interval, as the klines query returns it."""
    out = {}
    for interval, width in INTERVALS_MS.items():
        start = bucket_start(trades[-1].timestamp_ms, width)
        out[interval] = _row(
            [t for t in trades if bucket_start(t.timestamp_ms, width) == start], start
        )
    return out


def random_trades(seed: int, count: int, start_id: int = 1, start_ms: int = T0) -> list[Trade]:
    rng = random.Random(seed)
    ts, trades = start_ms, []
    for trade_id in range(start_id, start_id + count):
        ts += rng.choice((0, 0, 3, 400, 1_000, 61_000, 3_600_000))
        trades.append(trade(trade_id, rng.randint(1, 50_000), rng.randint(1, 900), ts))
    return trades


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_seeded_stats_equal_stats_that_saw_every_trade(seed: int) -> None:
    history = random_trades(seed, 800)
    now_ms = history[-1].timestamp_ms + 500
    live = random_trades(seed + 100, 300, start_id=len(history) + 1, start_ms=now_ms)
    reference = MarketStats(MARKET)
    for t in history:
        reference.add(t)
    seeded = MarketStats(MARKET)
    seeded.seed_history(
        seconds_rows(history, now_ms), latest_klines(history), history[-1].trade_id, now_ms
    )
    reference.window.expire(now_ms)
    assert seeded.ticker_json() == reference.ticker_json()
    for interval in INTERVALS_MS:
        assert seeded.kline_json(interval) == reference.kline_json(interval)
    for t in live:
        assert seeded.add(t) == reference.add(t) is True
        assert seeded.ticker_json() == reference.ticker_json()
        for interval in INTERVALS_MS:
            assert seeded.kline_json(interval) == reference.kline_json(interval)


def test_trades_at_or_below_the_watermark_are_not_counted_twice() -> None:
    history = [trade(1, 100, 1, T0), trade(2, 110, 2, T0 + 10), trade(3, 90, 1, T0 + 1_500)]
    stats = MarketStats(MARKET)
    # The watermark is the newest trade of any market in the snapshot: 5 (4 and 5 elsewhere).
    stats.seed_history(seconds_rows(history, T0 + 2_000), latest_klines(history), 5, T0 + 2_000)
    before = (stats.ticker_json(), stats.kline_json("1m"))
    for t in history + [trade(5, 200, 9, T0 + 2_000)]:  # held messages replayed: all seen
        assert not stats.add(t)
    assert (stats.ticker_json(), stats.kline_json("1m")) == before
    assert stats.add(trade(6, 80, 1, T0 + 2_100))
    ticker = stats.ticker_json()
    assert (ticker["trades"], ticker["low"], ticker["last_price"]) == (4, "0.8", "0.8")
    assert stats.kline_json("1m")["trades"] == 4


def test_seeding_drops_buckets_older_than_the_window() -> None:
    window = TickerWindow()
    old, recent = trade(1, 500, 1, T0), trade(2, 100, 1, T0 + WINDOW_MS)
    rows = seconds_rows([old, recent], T0)  # a snapshot taken earlier held both
    window.seed([bucket_from_row(MARKET, r) for r in rows], 2, T0 + WINDOW_MS + 1_000)
    summary = window.summary()
    assert (summary["first"], summary["high"], summary["trades"]) == (100, 100, 1)
    assert window.last_trade_id == 2


def test_an_empty_history_seeds_nothing_but_the_watermark() -> None:
    stats = MarketStats(MARKET)
    stats.seed_history([], {}, 42, T0)
    assert stats.ticker_json()["trades"] == 0 and stats.kline_json("1m") is None
    assert not stats.add(trade(42, 100, 1, T0))
    assert stats.add(trade(43, 100, 1, T0))


def test_seed_refuses_bad_input_and_leaves_the_stats_untouched() -> None:
    stats = MarketStats(MARKET)
    rows = seconds_rows([trade(1, 100, 1, T0)], T0)
    bad = dict(rows[0], high=MARKET.tick_size / 2)  # not a whole tick
    with pytest.raises(MoneyError):
        stats.seed_history([bad], {}, 1, T0)
    bad_kline = dict(latest_klines([trade(1, 100, 1, T0)])["1m"], volume=MARKET.lot_size / 3)
    with pytest.raises(MoneyError):
        stats.seed_history(rows, {"1m": bad_kline}, 1, T0)
    assert stats.window.summary()["trades"] == 0 and stats.window.last_trade_id == 0
    stats.seed_history(rows, {}, 1, T0)
    with pytest.raises(ValueError, match="empty"):
        stats.seed_history(rows, {}, 1, T0)
    window = TickerWindow()
    twice = [bucket_from_row(MARKET, rows[0]), bucket_from_row(MARKET, rows[0])]
    with pytest.raises(ValueError, match="order"):
        window.seed(twice, 1, T0)


def test_kline_seed_keeps_a_newer_current_bucket() -> None:
    builder = KlineBuilder(INTERVALS_MS["1m"])
    builder.add(trade(9, 100, 1, T0 + 120_000))
    stored = latest_klines([trade(1, 300, 1, T0)])["1m"]
    builder.seed(kline_from_row(MARKET, INTERVALS_MS["1m"], stored))
    assert builder.current is not None and builder.current.open == 100
    with pytest.raises(ValueError):
        builder.seed(kline_from_row(MARKET, INTERVALS_MS["1h"], stored))


def _message(*events: dict[str, Any]) -> bytes:
    return orjson.dumps(list(events))


def test_hub_holds_market_messages_until_released() -> None:
    hub = Hub(CONFIG, subscriber=None, fetch_depth=None, surfaces=[NativeTopics(CONFIG)])  # type: ignore[arg-type]
    hub.hold_market_messages()
    trade_event = codec.event_message(engine_trade(7, price=100, quantity=1, timestamp=T0), seq=1)
    hub.dispatch(market_channel("TATA_INR"), _message({"record": "DepthChanged"}))
    hub.dispatch(market_channel("TATA_INR"), _message(trade_event, dict(trade_event, trade_id=8)))
    hub.dispatch(user_channel("alice"), _message())  # private channels are never held
    assert hub.held_market_messages is not None and len(hub.held_market_messages) == 2
    assert hub.messages_in == 1
    assert first_trade_id(hub.held_market_messages) == 7
    assert first_trade_id([(market_channel("TATA_INR"), b"not json")]) is None
    hub.stats["TATA_INR"].seed_history([], {}, 7, T0)  # trade 7 is in the snapshot
    hub.release_market_messages()
    assert hub.held_market_messages is None
    assert hub.stats["TATA_INR"].window.trades == 1  # only trade 8
    hub.dispatch(market_channel("TATA_INR"), _message(dict(trade_event, trade_id=9)))
    assert hub.stats["TATA_INR"].window.trades == 2
