"""The ws server's live statistics (pure): the 24-hour window and the current klines of a
market, seeded from stored history and folded trade by trade with :class:`Candle`'s rules.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from exchange.markets import Market
from exchange.marketstats.candles import (
    BUCKET_MS,
    EMPTY_SUMMARY,
    INTERVALS_MS,
    WINDOW_MS,
    Kline,
    Trade,
    bucket_from_row,
    bucket_start,
    kline_from_row,
    kline_json,
    ticker_json,
)


class TickerWindow:
    """The trades of the last 24 hours of one market, folded per second (the live form of
    :func:`summary` over :func:`fold` of its buckets, kept in O(1) per trade)."""

    def __init__(self) -> None:
        self._buckets: deque[Kline] = deque()
        # Monotonic deques of buckets: highs decreasing, lows increasing; the front is the answer.
        self._highs: deque[Kline] = deque()
        self._lows: deque[Kline] = deque()
        self.volume = 0
        self.quote_volume = 0
        self.trades = 0
        self.last_trade_id = 0

    def add(self, trade: Trade) -> None:
        """Fold in one trade (trades come in id order; an old id is a replay and is ignored)."""
        if trade.trade_id <= self.last_trade_id:
            return
        self.last_trade_id = trade.trade_id
        start = trade.timestamp_ms - trade.timestamp_ms % BUCKET_MS
        if self._buckets and self._buckets[-1].start_ms >= start:
            bucket = self._buckets[-1]
            high, low = bucket.high, bucket.low
            bucket.add(trade)
            if bucket.high > high:
                self._push_high(bucket, pop_self=True)
            if bucket.low < low:
                self._push_low(bucket, pop_self=True)
        else:
            bucket = Kline.of_trade(trade, start, BUCKET_MS)
            self._buckets.append(bucket)
            self._push_high(bucket, pop_self=False)
            self._push_low(bucket, pop_self=False)
        self.volume += trade.quantity_lots
        self.quote_volume += trade.quote_units
        self.trades += 1
        self.expire(trade.timestamp_ms)

    def seed(self, buckets: Iterable[Kline], last_trade_id: int, now_ms: int) -> None:
        """Start an empty window from history summed per second (increasing seconds).

        ``last_trade_id`` is the newest trade the history holds: a later :meth:`add` of a
        trade at or below it is taken for a replay and ignored. Buckets before ``now_ms - 24 h``
        are dropped at once.
        """
        if self._buckets or self.last_trade_id:
            raise ValueError("only an empty window can be seeded")
        for bucket in buckets:
            if self._buckets and bucket.start_ms <= self._buckets[-1].start_ms:
                raise ValueError(f"bucket {bucket.start_ms} out of order")
            self._buckets.append(bucket)
            self._push_high(bucket, pop_self=False)
            self._push_low(bucket, pop_self=False)
            self.volume += bucket.volume
            self.quote_volume += bucket.quote_volume
            self.trades += bucket.trades
        self.last_trade_id = last_trade_id
        self.expire(now_ms)

    def _push_high(self, bucket: Kline, *, pop_self: bool) -> None:
        highs = self._highs
        if pop_self and highs and highs[-1] is bucket:
            highs.pop()
        while highs and highs[-1].high <= bucket.high:
            highs.pop()
        highs.append(bucket)

    def _push_low(self, bucket: Kline, *, pop_self: bool) -> None:
        lows = self._lows
        if pop_self and lows and lows[-1] is bucket:
            lows.pop()
        while lows and lows[-1].low >= bucket.low:
            lows.pop()
        lows.append(bucket)

    def expire(self, now_ms: int) -> None:
        """Drop the buckets that lie wholly before ``now_ms - 24 h``."""
        oldest = now_ms - WINDOW_MS
        oldest -= oldest % BUCKET_MS
        buckets = self._buckets
        while buckets and buckets[0].start_ms < oldest:
            gone = buckets.popleft()
            self.volume -= gone.volume
            self.quote_volume -= gone.quote_volume
            self.trades -= gone.trades
            if self._highs and self._highs[0] is gone:
                self._highs.popleft()
            if self._lows and self._lows[0] is gone:
                self._lows.popleft()

    def buckets(self) -> list[Kline]:
        """The window's per-second buckets, oldest first."""
        return list(self._buckets)

    def summary(self) -> dict[str, Any]:
        """:func:`summary` of the window: the same figures as folding :meth:`buckets`."""
        if not self._buckets:
            return dict(EMPTY_SUMMARY)
        return {
            "first": self._buckets[0].open,
            "last": self._buckets[-1].close,
            "high": self._highs[0].high,
            "low": self._lows[0].low,
            "volume": self.volume,
            "quote_volume": self.quote_volume,
            "trades": self.trades,
        }


class KlineBuilder:
    """The current bucket of one interval of one market."""

    def __init__(self, interval_ms: int) -> None:
        self.interval_ms = interval_ms
        self.current: Kline | None = None

    def add(self, trade: Trade) -> Kline:
        """Fold in a trade; returns the bucket it landed in (a late trade lands in the current)."""
        start = bucket_start(trade.timestamp_ms, self.interval_ms)
        kline = self.current
        if kline is None or start > kline.start_ms:
            kline = self.current = Kline.of_trade(trade, start, self.interval_ms)
        else:
            kline.add(trade)
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
