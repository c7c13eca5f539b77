"""Live market statistics, defined once: 24-hour tickers and klines (pure: no I/O, no clock).

What a ticker and a kline *are* lives here and nowhere else: the intervals and their bucketing
(:data:`INTERVALS_MS`, :func:`bucket_start`), how trades fold into a bucket (open and close by
trade id, high, low, sums), the percent change and its rounding (:func:`percent_change`, also
used by REST's tickers through :func:`percent_change_text`), and the contract's shapes
(:func:`ticker_json`, :func:`kline_json`). PostgreSQL only stores OHLCV buckets (the candles of
``0003_candles.sql``, folded by the same rules); the WebSocket server folds live trades with the
classes below. The choice: a pure module both programs import, rather than the SQL doing the
statistics and the ws server asking it per trade (a query per trade at 200 trades/s) or the ws
server being the one source REST asks (REST would then depend on a running ws process).

The WebSocket server pushes a ticker and the current kline of every interval on each trade, so it
cannot ask PostgreSQL each time. It folds every trade of a market into:

- :class:`TickerWindow`: the last 24 hours in one-second buckets (a deque), with running sums
  and monotonic deques for the high and low, so a trade costs O(1) amortised and memory stays
  bounded at 86,400 buckets per market whatever the trade rate. The price paid: the window's
  old edge moves in whole seconds (a trade leaves the window up to 999 ms late). Keeping every
  trade would be exact to the millisecond but needs ~17 M entries a day at 200 trades/s.
- :class:`KlineBuilder`: the current bucket of one interval, bucketed like TimescaleDB's
  ``time_bucket`` (UTC; origin Monday 2000-01-03, so weeks start on Monday and every shorter
  interval lines up with midnight).

Everything is integers (ticks, lots, quote minor units) until :func:`ticker_json` and
:func:`kline_json` format them through the market, so the math is exact.

At start the server seeds both from PostgreSQL (:meth:`MarketStats.seed_history`): the last
24 hours summed per second become the window's buckets, the latest stored bucket of each interval
becomes the builder's current kline; decimals are converted to steps exactly, through the market.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs

from exchange.markets import Market
from exchange.money import to_steps

WINDOW_MS = 24 * 60 * 60 * 1000
BUCKET_MS = 1000
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
class Bucket:
    """One second of trades: open/close are the first/last trade's price by id."""

    second: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    quote_volume: int
    trades: int


class TickerWindow:
    """The trades of the last 24 hours of one market, summarised."""

    def __init__(self) -> None:
        self._buckets: deque[Bucket] = deque()
        # Monotonic deques of buckets: highs decreasing, lows increasing; the front is the answer.
        self._highs: deque[Bucket] = deque()
        self._lows: deque[Bucket] = deque()
        self.volume = 0
        self.quote_volume = 0
        self.trades = 0
        self.last_trade_id = 0

    def add(self, trade: Trade) -> None:
        """Fold in one trade (trades come in id order; an old id is a replay and is ignored)."""
        if trade.trade_id <= self.last_trade_id:
            return
        self.last_trade_id = trade.trade_id
        second = trade.timestamp_ms // BUCKET_MS
        price = trade.price_ticks
        if self._buckets and self._buckets[-1].second >= second:
            bucket = self._buckets[-1]
            bucket.close = price
            if price > bucket.high:
                bucket.high = price
                self._push_high(bucket, pop_self=True)
            if price < bucket.low:
                bucket.low = price
                self._push_low(bucket, pop_self=True)
        else:
            bucket = Bucket(second, price, price, price, price, 0, 0, 0)
            self._buckets.append(bucket)
            self._push_high(bucket, pop_self=False)
            self._push_low(bucket, pop_self=False)
        bucket.volume += trade.quantity_lots
        bucket.quote_volume += trade.quote_units
        bucket.trades += 1
        self.volume += trade.quantity_lots
        self.quote_volume += trade.quote_units
        self.trades += 1
        self.expire(trade.timestamp_ms)

    def seed(self, buckets: Iterable[Bucket], last_trade_id: int, now_ms: int) -> None:
        """Start an empty window from history summed per second (increasing seconds).

        ``last_trade_id`` is the newest trade the history holds: a later :meth:`add` of a
        trade at or below it is taken for a replay and ignored. Buckets before ``now_ms - 24 h``
        are dropped at once.
        """
        if self._buckets or self.last_trade_id:
            raise ValueError("only an empty window can be seeded")
        for bucket in buckets:
            if self._buckets and bucket.second <= self._buckets[-1].second:
                raise ValueError(f"bucket {bucket.second} out of order")
            self._buckets.append(bucket)
            self._push_high(bucket, pop_self=False)
            self._push_low(bucket, pop_self=False)
            self.volume += bucket.volume
            self.quote_volume += bucket.quote_volume
            self.trades += bucket.trades
        self.last_trade_id = last_trade_id
        self.expire(now_ms)

    def _push_high(self, bucket: Bucket, *, pop_self: bool) -> None:
        highs = self._highs
        if pop_self and highs and highs[-1] is bucket:
            highs.pop()
        while highs and highs[-1].high <= bucket.high:
            highs.pop()
        highs.append(bucket)

    def _push_low(self, bucket: Bucket, *, pop_self: bool) -> None:
        lows = self._lows
        if pop_self and lows and lows[-1] is bucket:
            lows.pop()
        while lows and lows[-1].low >= bucket.low:
            lows.pop()
        lows.append(bucket)

    def expire(self, now_ms: int) -> None:
        """Drop the buckets that lie wholly before ``now_ms - 24 h``."""
        oldest = (now_ms - WINDOW_MS) // BUCKET_MS
        buckets = self._buckets
        while buckets and buckets[0].second < oldest:
            gone = buckets.popleft()
            self.volume -= gone.volume
            self.quote_volume -= gone.quote_volume
            self.trades -= gone.trades
            if self._highs and self._highs[0] is gone:
                self._highs.popleft()
            if self._lows and self._lows[0] is gone:
                self._lows.popleft()

    def summary(self) -> dict[str, int | None]:
        """Integer figures: first/last/high/low ticks (None with no trade), sums and count."""
        if not self._buckets:
            return {
                "first": None,
                "last": None,
                "high": None,
                "low": None,
                "volume": 0,
                "quote_volume": 0,
                "trades": 0,
            }
        return {
            "first": self._buckets[0].open,
            "last": self._buckets[-1].close,
            "high": self._highs[0].high,
            "low": self._lows[0].low,
            "volume": self.volume,
            "quote_volume": self.quote_volume,
            "trades": self.trades,
        }


@attrs.define
class Kline:
    start_ms: int
    interval_ms: int
    open: int
    high: int
    low: int
    close: int
    volume: int = 0
    quote_volume: int = 0
    trades: int = 0


class KlineBuilder:
    """The current bucket of one interval of one market."""

    def __init__(self, interval_ms: int) -> None:
        self.interval_ms = interval_ms
        self.current: Kline | None = None

    def add(self, trade: Trade) -> Kline:
        """Fold in a trade; returns the bucket it landed in (a late trade lands in the current)."""
        start = bucket_start(trade.timestamp_ms, self.interval_ms)
        kline = self.current
        price = trade.price_ticks
        if kline is None or start > kline.start_ms:
            kline = self.current = Kline(start, self.interval_ms, price, price, price, price)
        else:
            kline.high = max(kline.high, price)
            kline.low = min(kline.low, price)
            kline.close = price
        kline.volume += trade.quantity_lots
        kline.quote_volume += trade.quote_units
        kline.trades += 1
        return kline

    def seed(self, kline: Kline) -> None:
        """Start from the latest stored bucket, unless a newer one is already current."""
        if kline.interval_ms != self.interval_ms:
            raise ValueError(f"a {kline.interval_ms} ms kline for a {self.interval_ms} ms builder")
        if self.current is None or kline.start_ms > self.current.start_ms:
            self.current = kline


class MarketStats:
    """Ticker window and klines of every interval for one market."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.window = TickerWindow()
        self.klines = {name: KlineBuilder(ms) for name, ms in INTERVALS_MS.items()}

    def add(self, trade: Trade) -> bool:
        """Fold in a trade; False if it was already counted (a replay)."""
        if trade.trade_id <= self.window.last_trade_id:
            return False
        self.window.add(trade)
        for builder in self.klines.values():
            builder.add(trade)
        return True

    def seed_history(
        self,
        seconds: Iterable[Mapping[str, Any]],
        klines: Mapping[str, Mapping[str, Any]],
        last_trade_id: int,
        now_ms: int,
    ) -> None:
        """Start from stored history (rows of :meth:`HistoryQueries.stats_seed`, money as
        Decimal): per-second sums of the last 24 hours, oldest first, and the latest bucket of
        each interval. Trades up to ``last_trade_id`` count as seen; live ones above it add on.
        """
        # Everything is converted first, so bad data leaves the statistics untouched.
        seconds = list(seconds)
        buckets = [bucket_from_row(self.market, row) for row in seconds]
        newest = max((row["last_id"] for row in seconds), default=0)
        latest = {
            interval: kline_from_row(self.market, INTERVALS_MS[interval], row)
            for interval, row in klines.items()
        }
        self.window.seed(buckets, max(last_trade_id, newest), now_ms)
        for interval, kline in latest.items():
            self.klines[interval].seed(kline)

    def ticker_json(self) -> dict[str, Any]:
        return ticker_json(self.market, self.window.summary())

    def kline_json(self, interval: str) -> dict[str, Any] | None:
        kline = self.klines[interval].current
        return None if kline is None else kline_json(self.market, kline)


def ohlcv_steps(market: Market, row: Mapping[str, Any]) -> dict[str, int]:
    """A stored OHLCV row's figures (Decimal money) in the market's steps (exact).

    Raises:
        MoneyError: a value is not a whole number of the market's steps.
    """
    ticks = market.tick_size
    return {
        "open": to_steps(row["open"], ticks),
        "high": to_steps(row["high"], ticks),
        "low": to_steps(row["low"], ticks),
        "close": to_steps(row["close"], ticks),
        "volume": to_steps(row["volume"], market.lot_size),
        "quote_volume": market.quote.to_units(row["quote_volume"]),
        "trades": int(row["trades"]),
    }


def bucket_from_row(market: Market, row: Mapping[str, Any]) -> Bucket:
    """A per-second row (``start_ms`` and Decimal money) → a bucket in steps (exact)."""
    return Bucket(second=row["start_ms"] // BUCKET_MS, **ohlcv_steps(market, row))


def kline_from_row(market: Market, interval_ms: int, row: Mapping[str, Any]) -> Kline:
    """A kline row (``start_ms`` and Decimal money) → a :class:`Kline` in steps (exact)."""
    return Kline(start_ms=row["start_ms"], interval_ms=interval_ms, **ohlcv_steps(market, row))


def ticker_json(market: Market, summary: dict[str, int | None]) -> dict[str, Any]:
    """The contract's ticker object (without ``type``)."""
    first, last = summary["first"], summary["last"]
    price = market.format_price
    if first is None or last is None:
        change = percent = None
    else:
        change = _signed(price, last - first)
        percent = format_hundredths(percent_change(first, last)[0])
    return {
        "market": market.symbol,
        "first_price": None if first is None else price(first),
        "last_price": None if last is None else price(last),
        "price_change": change,
        "price_change_percent": percent,
        "high": None if summary["high"] is None else price(summary["high"]),
        "low": None if summary["low"] is None else price(summary["low"]),
        "volume": market.format_quantity(summary["volume"] or 0),
        "quote_volume": market.quote.format(summary["quote_volume"] or 0),
        "trades": summary["trades"],
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


def _signed(format_ticks, ticks: int) -> str:
    return "-" + format_ticks(-ticks) if ticks < 0 else format_ticks(ticks)
