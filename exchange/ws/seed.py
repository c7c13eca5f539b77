"""Seeding the live statistics from PostgreSQL when the WebSocket server starts.

The hub computes ``ticker@M`` and ``kline_I@M`` from the trades it sees; a server that has just
started has seen none, so it would disagree with REST (served from PostgreSQL). At start it
therefore loads, per market, the last 24 hours summed per second and the latest bucket of every
kline interval, and folds live trades on top.

No trade is missed and none counted twice, whatever the engine does meanwhile:

1. The hub holds market messages back (:meth:`Hub.hold_market_messages`) and subscribes to every
   market channel before the database is read: every trade published from then on is kept.
2. One REPEATABLE READ snapshot gives the per-second sums, the latest klines and ``G``, the
   newest trade id (any market) in the database (:meth:`HistoryQueries.stats_seed`).
3. The db writer stores trades in engine order, so the snapshot holds every trade up to ``G``.
   ``G`` becomes each market's watermark: a held (or later) trade with an id at or below it is
   already counted and :meth:`MarketStats.add` drops it; those above it add on.
4. If the first held trade is above ``G + 1``, the trades between were published before the
   subscription and had not reached PostgreSQL yet (the writer lags): the snapshot is taken again
   until the writer has caught up, for at most ``catch_up_s``, then we go on with a warning.
   (Without any held trade such a lag cannot be seen; the next restart corrects it.)
5. The held messages are dispatched in order and the hub goes live.

PostgreSQL down or broken: a warning, and the statistics start from live trades only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import trio

from exchange import codec
from exchange.history.queries import StatsSeed, open_history_reader
from exchange.marketstats import BUCKET_MS, WINDOW_MS
from exchange.models import TradeExecuted
from exchange.surfaces.native.ws_auth import wall_clock_ms
from exchange.ws.hub import Hub

log = logging.getLogger(__name__)

CATCH_UP_S = 10.0
CATCH_UP_POLL_S = 0.2
# One snapshot reads a day of trades per market: slower than an API read, yet bounded, so a
# stalled PostgreSQL delays the server's start by this much at most.
SEED_TIMEOUT_S = 30.0


async def seed_statistics(
    hub: Hub,
    database_url: str,
    *,
    catch_up_s: float = CATCH_UP_S,
) -> bool:
    """Seed ``hub.stats`` and release its held market messages; False if it started unseeded.

    Call it after :meth:`Hub.hold_market_messages` and :meth:`Hub.run` (subscribed), before
    clients connect. Never raises for PostgreSQL's sake.
    """
    started = trio.current_time()
    try:
        seed, now_ms = await _snapshot(hub, database_url, catch_up_s)
    except Exception as exc:  # unreachable, not migrated, ...: the server must still come up
        log.warning("statistics not seeded from PostgreSQL (%s); they start from live trades", exc)
        hub.release_market_messages()
        return False
    seeded = True
    for symbol, stats in hub.stats.items():
        try:
            stats.seed_history(
                seed.seconds.get(symbol, []),
                seed.klines.get(symbol, {}),
                seed.last_trade_id,
                now_ms,
            )
        except Exception:  # bad stored data for one market must not stop the others
            log.exception("statistics of %s not seeded", symbol)
            seeded = False
    held = len(hub.held_market_messages or ())
    hub.release_market_messages()
    log.info(
        "statistics seeded up to trade %d (%d buckets, %d held messages) in %.2f s",
        seed.last_trade_id,
        sum(len(rows) for rows in seed.seconds.values()),
        held,
        trio.current_time() - started,
    )
    return seeded


async def _snapshot(hub: Hub, database_url: str, catch_up_s: float) -> tuple[StatsSeed, int]:
    deadline = trio.current_time() + catch_up_s
    markets = list(hub.stats)
    async with open_history_reader(
        database_url, max_connections=1, timeout_s=SEED_TIMEOUT_S, application="exchange-ws"
    ) as history:
        while True:
            now_ms = wall_clock_ms()
            # The window's oldest bucket is the second holding now - 24 h (TickerWindow.expire).
            since_ms = (now_ms - WINDOW_MS) // BUCKET_MS * BUCKET_MS
            seed = await history.stats_seed(markets, since_ms)
            first = first_trade_id(hub.held_market_messages or ())
            if first is None or first <= seed.last_trade_id + 1:
                return seed, now_ms
            if trio.current_time() >= deadline:
                log.warning(
                    "PostgreSQL holds trades up to %d but the first live one is %d: trades "
                    "between are missing from the statistics",
                    seed.last_trade_id,
                    first,
                )
                return seed, now_ms
            await trio.sleep(CATCH_UP_POLL_S)


def first_trade_id(messages: Iterable[tuple[str, bytes]]) -> int | None:
    """The smallest trade id in held ``(channel, data)`` market messages, None without trades."""
    first = None
    for _channel, data in messages:
        try:
            ids = [e.trade_id for e in codec.decode_events(data) if type(e) is TradeExecuted]
        except Exception:  # dispatch reports bad messages; here they just carry no trade
            continue
        if ids and (first is None or min(ids) < first):
            first = min(ids)
    return first
