"""Live market statistics, defined once: 24-hour tickers and klines (pure: no I/O, no clock).

What a ticker and a kline *are* lives here and nowhere else: the intervals and their bucketing
(:data:`INTERVALS_MS`, :func:`bucket_start`, TimescaleDB's ``time_bucket``: UTC, origin Monday
2000-01-03), the fold of trades into a candle and of candles into one another (:class:`Candle`:
open and close the first and last trade by id, high, low, sums), the 24-hour window and how it
is cut along stored candles (:class:`StoredWindow`), the figures of a ticker (:func:`summary`),
the percent change and its rounding (:func:`percent_change`), and the contract's shapes
(:func:`ticker_json`, :func:`stored_ticker_json`, :func:`kline_json`).

The design: PostgreSQL only *stores* buckets, and every statistic is folded here from them.
The db writer's trades are summed by the same rules into candles of 1 minute, 1 hour and 1 day
(``0003_candles.sql``: a statement trigger on plain PostgreSQL, continuous aggregates on
TimescaleDB, which historical klines need). Then:

- REST's ticker (``HistoryQueries.tickers``) reads the window's stored pieces - the 1-hour
  candles of its whole hours, the 1-minute candles of its partial hours, and the raw trades of
  its two partial minutes summed into one piece - at most ~140 rows per market, never a day of
  trades, and folds them with :func:`fold` into :func:`summary` and :func:`stored_ticker_json`.
- The WebSocket server, which pushes a ticker and the current kline of every interval on each
  trade, cannot ask PostgreSQL each time (200 trades/s; and ``exchange.ws`` never imports the db
  program). It seeds the same fold from the same history at start (the window's trades summed
  per second; the latest stored bucket of each interval: ``exchange/ws/seed.py``) and folds live
  trades on top: :class:`TickerWindow` and :class:`KlineBuilder`, with :meth:`Candle.add`.
- REST's klines are the stored buckets themselves (1m, 1h, 1d) or SQL roll-ups of them by the
  same rules (5m … 30m from minutes, 4h from hours, 1w from days: storage's own 1m → 1h → 1d
  step, for widths it does not keep); the ws server seeds its current kline from that very row.
  Rolling them up here instead would fold up to 15,000 candles per request (30m × 500).

Rejected: SQL computing the statistics with the ws server asking it per trade (a query per
trade), the ws server as the one source REST asks (REST would depend on a running ws process),
and the former two implementations, SQL's ticker and this module's, kept equal by seeding.

:class:`TickerWindow` holds the last 24 hours in one-second buckets (a deque) with running sums
and monotonic deques for the high and low, so a trade costs O(1) amortised and memory stays at
86,400 buckets per market whatever the trade rate; its figures are those of folding its buckets.
The price paid: the live window's old edge moves in whole seconds (a trade leaves it up to 999 ms
late), where REST, reading raw trades at its edges, is exact to the millisecond; keeping every
trade would need ~17 M entries a day at 200 trades/s. :class:`KlineBuilder` keeps the current
bucket of one interval.

Money is integers (ticks, lots, quote minor units) on the ws side until :func:`ticker_json` and
:func:`kline_json` format them through the market; REST folds PostgreSQL's exact Decimals with the
same code (the fold needs only order and sums), so both are exact.
"""

from exchange.marketstats.candles import (
    BUCKET_MS,
    HOUR_MS,
    INTERVALS_MS,
    MINUTE_MS,
    ORIGIN_MS,
    WINDOW_MS,
    Candle,
    Kline,
    StoredWindow,
    Trade,
    bucket_from_row,
    bucket_start,
    candle_from_row,
    fold,
    format_hundredths,
    iso,
    kline_from_row,
    kline_json,
    percent_change,
    percent_change_text,
    stored_ticker_json,
    summary,
    ticker_json,
)
from exchange.marketstats.live import KlineBuilder, MarketStats, TickerWindow

__all__ = [
    "BUCKET_MS",
    "HOUR_MS",
    "INTERVALS_MS",
    "MINUTE_MS",
    "ORIGIN_MS",
    "WINDOW_MS",
    "Candle",
    "Kline",
    "KlineBuilder",
    "MarketStats",
    "StoredWindow",
    "TickerWindow",
    "Trade",
    "bucket_from_row",
    "bucket_start",
    "candle_from_row",
    "fold",
    "format_hundredths",
    "iso",
    "kline_from_row",
    "kline_json",
    "percent_change",
    "percent_change_text",
    "stored_ticker_json",
    "summary",
    "ticker_json",
]
