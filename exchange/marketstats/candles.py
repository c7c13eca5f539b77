"""The rules of market statistics (pure): intervals and bucketing, the candle fold, the stored
24-hour window, the percent change and the contract's ticker and kline shapes.

See :mod:`exchange.marketstats` for the design; :mod:`exchange.marketstats.live` folds live trades
with these rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs

from exchange.markets import Market
from exchange.money import format_decimal, to_steps

WINDOW_MS = 24 * 60 * 60 * 1000
BUCKET_MS = 1000
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
# TimescaleDB's default time_bucket origin: Monday 2000-01-03 00:00 UTC.
ORIGIN_MS = 946_857_600_000
INTERVALS_MS: dict[str, int] = {
    "1m": 60_000,
    "5m": 5 * 60_000,
    "15m": 15 * 60_000,
    "30m": 30 * 60_000,
    "1h": 60 * 60_000,
    "4h": 4 * 60 * 60_000,
    "1d": 24 * 60 * 60_000,
    "1w": 7 * 24 * 60 * 60_000,
}


@attrs.frozen
class Trade:
    """The part of a trade the statistics need (integers of the market's steps)."""

    trade_id: int
    price_ticks: int
    quantity_lots: int
    quote_units: int
    timestamp_ms: int


def bucket_start(timestamp_ms: int, interval_ms: int) -> int:
    """``time_bucket(interval, ts)`` in ms: the start of the bucket holding ``timestamp_ms``."""
    return ORIGIN_MS + (timestamp_ms - ORIGIN_MS) // interval_ms * interval_ms


def percent_change(first_ticks: int, last_ticks: int) -> tuple[int, int]:
    """``(last - first) / first * 100`` rounded half-up (away from zero) to 2 places.

    Returned as hundredths, e.g. ``(-1234, 2)`` means ``-12.34``. Integer math: exact.
    """
    change = last_ticks - first_ticks
    hundredths, remainder = divmod(abs(change) * 10_000, first_ticks)
    if 2 * remainder >= first_ticks:
        hundredths += 1
    return (-hundredths if change < 0 else hundredths), 2


def percent_change_text(first: Decimal, last: Decimal) -> str:
    """:func:`percent_change` of two decimal prices (any two exact decimals), as text."""
    exponent = min(first.as_tuple().exponent, last.as_tuple().exponent, 0)
    assert isinstance(exponent, int), "prices are finite"
    scaled_first, scaled_last = int(first.scaleb(-exponent)), int(last.scaleb(-exponent))
    return format_hundredths(percent_change(scaled_first, scaled_last)[0])


def format_hundredths(value: int) -> str:
    """``-1234`` → ``"-12.34"``, ``120`` → ``"1.2"``, ``0`` → ``"0"`` (no trailing zeros)."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 100)
    text = f"{whole}.{frac:02d}".rstrip("0").rstrip(".")
    return sign + text if text != "0" else "0"


@attrs.define
class Candle:
    """Trades of a span summed by the fold rules: open and close are the first and last trade's
    price *by trade id* (carried as ``first_id``/``last_id``), high and low the extremes, then
    sums. Both folds below are associative and commutative, so pieces combine in any order and
    any grouping: trades into a bucket, buckets into a window or a coarser bucket.

    Money is integers of the market's steps on the ws side; REST folds PostgreSQL's Decimals
    (as stored) with the same code, which needs nothing of the numbers but order and sums.
    """

    open: Any
    high: Any
    low: Any
    close: Any
    volume: Any
    quote_volume: Any
    trades: int
    first_id: int
    last_id: int

    def add(self, trade: Trade) -> None:
        """Fold in one trade."""
        price = trade.price_ticks
        if trade.trade_id > self.last_id:
            self.close, self.last_id = price, trade.trade_id
        if trade.trade_id < self.first_id:
            self.open, self.first_id = price, trade.trade_id
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        self.volume += trade.quantity_lots
        self.quote_volume += trade.quote_units
        self.trades += 1

    def merge(self, other: Candle) -> None:
        """Fold in another span's candle (PostgreSQL's candles combine by the same rules)."""
        if other.last_id > self.last_id:
            self.close, self.last_id = other.close, other.last_id
        if other.first_id < self.first_id:
            self.open, self.first_id = other.open, other.first_id
        if other.high > self.high:
            self.high = other.high
        if other.low < self.low:
            self.low = other.low
        self.volume += other.volume
        self.quote_volume += other.quote_volume
        self.trades += other.trades


@attrs.define
class Kline(Candle):
    """A candle of one bucket: ``[start_ms, start_ms + interval_ms)``."""

    start_ms: int
    interval_ms: int

    @classmethod
    def of_trade(cls, trade: Trade, start_ms: int, interval_ms: int) -> Kline:
        price, trade_id = trade.price_ticks, trade.trade_id
        return cls(
            open=price,
            high=price,
            low=price,
            close=price,
            volume=trade.quantity_lots,
            quote_volume=trade.quote_units,
            trades=1,
            first_id=trade_id,
            last_id=trade_id,
            start_ms=start_ms,
            interval_ms=interval_ms,
        )


def fold(pieces: Iterable[Candle]) -> Candle | None:
    """The candle of the union of disjoint pieces (None for none)."""
    total = None
    for piece in pieces:
        if total is None:
            total = Candle(
                piece.open,
                piece.high,
                piece.low,
                piece.close,
                piece.volume,
                piece.quote_volume,
                piece.trades,
                piece.first_id,
                piece.last_id,
            )
        else:
            total.merge(piece)
    return total


EMPTY_SUMMARY: dict[str, Any] = dict.fromkeys(("first", "last", "high", "low")) | {
    "volume": 0,
    "quote_volume": 0,
    "trades": 0,
}


def summary(candle: Candle | None) -> dict[str, Any]:
    """A ticker's figures from the window's candle: first/last/high/low (None with no trade),
    sums and count."""
    if candle is None:
        return dict(EMPTY_SUMMARY)
    return {
        "first": candle.open,
        "last": candle.close,
        "high": candle.high,
        "low": candle.low,
        "volume": candle.volume,
        "quote_volume": candle.quote_volume,
        "trades": candle.trades,
    }


@attrs.frozen
class StoredWindow:
    """The 24-hour window ``(since_ms, until_ms]`` cut along PostgreSQL's stored candles:
    raw trades in ``(since_ms, first_minute)`` and ``[last_minute, until_ms]`` (under a minute
    each, summed into one piece each), 1-minute candles in ``[first_minute, first_hour)`` and
    ``[last_hour, last_minute)``, 1-hour candles in ``[first_hour, last_hour)``: at most
    ~140 pieces per market, exact to the millisecond at both edges."""

    since_ms: int
    first_minute: int
    first_hour: int
    last_hour: int
    last_minute: int
    until_ms: int

    @classmethod
    def ending(cls, until_ms: int) -> StoredWindow:
        since_ms = until_ms - WINDOW_MS
        first_minute = bucket_start(since_ms, MINUTE_MS) + MINUTE_MS
        last_minute = bucket_start(until_ms, MINUTE_MS)
        first_hour = bucket_start(first_minute + HOUR_MS - 1, HOUR_MS)
        last_hour = max(first_hour, bucket_start(last_minute, HOUR_MS))
        return cls(since_ms, first_minute, first_hour, last_hour, last_minute, until_ms)


def candle_from_row(row: Mapping[str, Any]) -> Candle:
    """A stored candle-shaped row as it is (Decimal money): REST folds these."""
    return Candle(
        row["open"],
        row["high"],
        row["low"],
        row["close"],
        row["volume"],
        row["quote_volume"],
        int(row["trades"]),
        row["first_id"],
        row["last_id"],
    )


def kline_from_row(market: Market, interval_ms: int, row: Mapping[str, Any]) -> Kline:
    """A stored bucket (``start_ms`` and Decimal money) → a :class:`Kline` in steps (exact).

    Rows without trade ids (klines as REST serves them) count as older than any live trade.

    Raises:
        MoneyError: a value is not a whole number of the market's steps.
    """
    ticks = market.tick_size
    return Kline(
        open=to_steps(row["open"], ticks),
        high=to_steps(row["high"], ticks),
        low=to_steps(row["low"], ticks),
        close=to_steps(row["close"], ticks),
        volume=to_steps(row["volume"], market.lot_size),
        quote_volume=market.quote.to_units(row["quote_volume"]),
        trades=int(row["trades"]),
        first_id=row.get("first_id", 0),
        last_id=row.get("last_id", 0),
        start_ms=row["start_ms"],
        interval_ms=interval_ms,
    )


def bucket_from_row(market: Market, row: Mapping[str, Any]) -> Kline:
    """A per-second row (``start_ms`` and Decimal money) → a one-second bucket in steps."""
    return kline_from_row(market, BUCKET_MS, row)


def ticker_json(market: Market, figures: Mapping[str, Any]) -> dict[str, Any]:
    """The contract's ticker object (without ``type``) from :func:`summary` figures in the
    market's steps (the ws server's)."""
    return _ticker(
        market.symbol, figures, market.format_price, market.format_quantity, market.quote.format
    )


def stored_ticker_json(symbol: str, figures: Mapping[str, Any]) -> dict[str, Any]:
    """The same object from figures in Decimal money as PostgreSQL stores it (REST's)."""
    return _ticker(symbol, figures, format_decimal, format_decimal, format_decimal)


def _ticker(
    symbol: str,
    figures: Mapping[str, Any],
    price: Callable[[Any], str],
    quantity: Callable[[Any], str],
    quote: Callable[[Any], str],
) -> dict[str, Any]:
    first, last = figures["first"], figures["last"]
    if first is None or last is None:
        change = percent = None
    else:
        change = _signed(price, last - first)
        if isinstance(first, int) and isinstance(last, int):
            percent = format_hundredths(percent_change(first, last)[0])
        else:
            percent = percent_change_text(first, last)
    return {
        "market": symbol,
        "first_price": None if first is None else price(first),
        "last_price": None if last is None else price(last),
        "price_change": change,
        "price_change_percent": percent,
        "high": None if figures["high"] is None else price(figures["high"]),
        "low": None if figures["low"] is None else price(figures["low"]),
        "volume": quantity(figures["volume"] or 0),
        "quote_volume": quote(figures["quote_volume"] or 0),
        "trades": figures["trades"],
    }


def kline_json(market: Market, kline: Kline) -> dict[str, Any]:
    """The contract's kline object (without ``type`` and ``interval``)."""
    return {
        "start": iso(kline.start_ms),
        "end": iso(kline.start_ms + kline.interval_ms),
        "open": market.format_price(kline.open),
        "high": market.format_price(kline.high),
        "low": market.format_price(kline.low),
        "close": market.format_price(kline.close),
        "volume": market.format_quantity(kline.volume),
        "quote_volume": market.quote.format(kline.quote_volume),
        "trades": kline.trades,
    }


def iso(timestamp_ms: int) -> str:
    """``2024-01-01T00:00:00Z`` (bucket edges are whole seconds)."""
    return datetime.fromtimestamp(timestamp_ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _signed(format_price: Callable[[Any], str], value: Any) -> str:
    return "-" + format_price(-value) if value < 0 else format_price(value)
