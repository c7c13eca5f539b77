"""The history the API serves from PostgreSQL: trades, klines, tickers, orders and fills.

:class:`HistoryQueries` runs the named statements of :mod:`exchange.history.statements` on a
psycopg_pool pool through trio worker threads (:mod:`exchange.history.pg`) and returns the contract's
shapes: money as exact decimal strings without exponent or trailing zeros, timestamps as integer
milliseconds, kline edges as ISO-8601 UTC. Raises :class:`~exchange.errors.ServiceUnavailable`
when PostgreSQL cannot be reached or does not answer within the reader's timeout.

Klines roll the candle tables up with ``time_bucket``: 5m to 30m from 1-minute candles, 4h from
1-hour ones, 1w from 1-day ones. To serve "the first (or latest) ``limit`` buckets" without
scanning a market's whole history, the inner scan reads at most ``limit * (interval / candle)``
candles in the wanted direction: a bucket holds at most that many candles, and the candles of the
first ``limit`` buckets come before any other in that direction, so those buckets are complete.

:meth:`HistoryQueries.stats_seed` serves the WebSocket server rather than the API: raw rows
(Decimals, millisecond integers) from which it seeds its live tickers and klines at start.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
import psycopg
import trio
from psycopg.rows import dict_row

from exchange.history import statements
from exchange.history.pg import PooledConnections
from exchange.history.replica import ReadRouter
from exchange.history.replica_lag import ReplicaState
from exchange.marketstats import (
    Candle,
    StoredWindow,
    candle_from_row,
    fold,
    stored_ticker_json,
    summary,
)
from exchange.models import FEE_ACCOUNT, AssetTotals, LedgerAudit
from exchange.money import format_decimal
from exchange.settings import Settings

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_DEFAULTS = Settings()
# Klines first read this many times `limit` buckets (see _klines_rows).
KLINES_WINDOW = 2

# interval → (bucket width, candle table, candles per bucket at most)
KLINE_INTERVALS: dict[str, tuple[timedelta, str, int]] = {
    "1m": (timedelta(minutes=1), "candles_1m", 1),
    "5m": (timedelta(minutes=5), "candles_1m", 5),
    "15m": (timedelta(minutes=15), "candles_1m", 15),
    "30m": (timedelta(minutes=30), "candles_1m", 30),
    "1h": (timedelta(hours=1), "candles_1h", 1),
    "4h": (timedelta(hours=4), "candles_1h", 4),
    "1d": (timedelta(days=1), "candles_1d", 1),
    "1w": (timedelta(weeks=1), "candles_1d", 7),
}


def to_ms(moment: datetime) -> int:
    """An aware datetime → integer milliseconds since the epoch (exact, no float)."""
    return (moment - _EPOCH) // _MS


def _moment(timestamp_ms: int) -> datetime:
    return _EPOCH + timestamp_ms * _MS


def iso(moment: datetime) -> str:
    """``2024-01-01T00:00:00Z`` (bucket edges are whole seconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format_decimal(value)


def _order(row: dict[str, Any]) -> dict[str, Any]:
    """The contract's order object (without fills) from an ``orders`` row."""
    out = {
        "order_id": str(row["order_id"]),
        "client_order_id": row["client_order_id"],
        "market": row["market"],
        "side": row["side"],
        "type": row["type"],
        "price": _money(row["price"]),
        "quantity": _money(row["quantity"]),
        "executed_quantity": format_decimal(row["executed_quantity"]),
        "executed_quote_quantity": format_decimal(row["executed_quote_quantity"]),
        "status": row["status"],
        "time_in_force": row["time_in_force"],
        "post_only": row["post_only"],
        "self_trade_prevention": row["self_trade_prevention"],
        "created_at": to_ms(row["created_at"]),
        "updated_at": to_ms(row["updated_at"]),
        "trigger_price": _money(row["trigger_price"]),
        "triggered_at": None if row["triggered_at"] is None else to_ms(row["triggered_at"]),
    }
    if row["type"] == "market" and row["side"] == "buy":
        out["quote_quantity"] = _money(row["quote_quantity"])
    return out


def _rows(conn: psycopg.Connection, query: str, params: dict[str, Any]) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


class HistoryQueries:
    """Read queries for the API, on a pool of up to ``max_connections`` connections.

    A query answers within ``timeout_s`` (default: ``DB_QUERY_TIMEOUT_S``'s), waiting for a
    working connection included, or raises ServiceUnavailable. ``application`` names the
    connections in ``pg_stat_activity``. With ``replica_url`` every read goes through a
    :class:`~exchange.history.replica.ReadRouter`: to the replica while it lags at most
    ``max_replica_lag_s``, else to the primary (``on_replica_state`` hears every check).
    """

    def __init__(
        self,
        database_url: str,
        *,
        max_connections: int = 4,
        timeout_s: float = _DEFAULTS.db_query_timeout_s,
        connect_timeout_s: int = _DEFAULTS.db_connect_timeout_s,
        application: str = "exchange-history",
        replica_url: str | None = None,
        max_replica_lag_s: float = _DEFAULTS.replica_max_lag_s,
        on_replica_state: Callable[[ReplicaState], None] | None = None,
    ) -> None:
        def pool(url: str) -> PooledConnections:
            return PooledConnections(
                url,
                max_size=max_connections,
                timeout_s=timeout_s,
                connect_timeout_s=connect_timeout_s,
                application=application,
            )

        self._pool = ReadRouter(
            pool(database_url),
            None if replica_url is None else pool(replica_url),
            max_lag_s=max_replica_lag_s,
            on_state=on_replica_state,
        )

    @property
    def replica_state(self) -> ReplicaState | None:
        """The replica as last checked (None without one)."""
        return self._pool.state

    async def watch_replica(self) -> None:
        """Check the replica until cancelled; returns at once without one."""
        await self._pool.watch()

    async def open(self) -> None:
        await self._pool.open()

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def __aenter__(self) -> HistoryQueries:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _query(self, query: str, **params: Any) -> list[dict]:
        return await self._pool.run(_rows, query, params)

    async def ping(self) -> bool:
        """True when the primary answers (raises ServiceUnavailable otherwise)."""
        await self._pool.primary.run(lambda conn: conn.execute(statements.PING).fetchone())
        return True

    async def recent_trades(self, market: str, limit: int) -> list[dict]:
        """The market's newest ``limit`` trades, newest first."""
        rows = await self._query(statements.RECENT_TRADES, market=market, limit=limit)
        return [
            {
                "id": row["id"],
                "market": row["market"],
                "price": format_decimal(row["price"]),
                "quantity": format_decimal(row["quantity"]),
                "quote_quantity": format_decimal(row["quote_quantity"]),
                "is_buyer_maker": row["is_buyer_maker"],
                "timestamp": to_ms(row["time"]),
            }
            for row in rows
        ]

    async def klines(
        self,
        market: str,
        interval: str,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        limit: int = 500,
    ) -> list[dict]:
        """Candles of ``interval``, ascending; buckets without trades are omitted.

        With ``start_time``: the first ``limit`` buckets from the one containing it; without:
        the latest ``limit``. ``end_time`` keeps buckets that start at or before it.

        Raises:
            ValueError: ``interval`` is not one of :data:`KLINE_INTERVALS`.
        """
        rows = await self._pool.run(_klines_rows, market, interval, start_time, end_time, limit)
        width = KLINE_INTERVALS[interval][0]
        if start_time is None:  # DESC
            rows.reverse()
        return [
            {
                "start": iso(row["start"]),
                "end": iso(row["start"] + width),
                "open": format_decimal(row["open"]),
                "high": format_decimal(row["high"]),
                "low": format_decimal(row["low"]),
                "close": format_decimal(row["close"]),
                "volume": format_decimal(row["volume"]),
                "quote_volume": format_decimal(row["quote_volume"]),
                "trades": int(row["trades"]),
            }
            for row in rows
        ]

    async def tickers(self, markets: list[str], now: datetime | None = None) -> list[dict]:
        """One 24-hour ticker per market, in the order given, over ``(now - 24 h, now]``.

        PostgreSQL returns the window's stored pieces (:class:`~exchange.marketstats.StoredWindow`)
        and :mod:`exchange.marketstats` folds them, as the ws server folds its own: one
        definition. ``first_price`` is the price of the window's oldest trade; prices are None
        (and volumes ``"0"``) for a market without trades in the window.
        """
        until = _utc(now) if now is not None else datetime.now(UTC)
        cut = StoredWindow.ending(to_ms(until))
        rows = await self._query(
            statements.TICKER_PIECES,
            markets=list(markets),
            since=_moment(cut.since_ms),
            first_minute=_moment(cut.first_minute),
            first_hour=_moment(cut.first_hour),
            last_hour=_moment(cut.last_hour),
            last_minute=_moment(cut.last_minute),
            until=_moment(cut.until_ms),
        )
        pieces: dict[str, list[Candle]] = {market: [] for market in markets}
        for row in rows:
            pieces[row["market"]].append(candle_from_row(row))
        return [stored_ticker_json(m, summary(fold(pieces[m]))) for m in markets]

    async def order_history(
        self, user_id: str, market: str | None = None, limit: int = 100
    ) -> list[dict]:
        """The user's closed orders (without fills), newest first by the time they closed."""
        if market is None:
            rows = await self._query(
                statements.ORDER_HISTORY_ALL_MARKETS, user_id=user_id, limit=limit
            )
        else:
            rows = await self._query(
                statements.ORDER_HISTORY, user_id=user_id, market=market, limit=limit
            )
        return [_order(row) for row in rows]

    async def fills(self, user_id: str, market: str | None = None, limit: int = 100) -> list[dict]:
        """The user's own trades, newest first."""
        if market is None:
            rows = await self._query(statements.FILLS_ALL_MARKETS, user_id=user_id, limit=limit)
        else:
            rows = await self._query(statements.FILLS, user_id=user_id, market=market, limit=limit)
        return [
            {
                "trade_id": row["id"],
                "order_id": str(row["order_id"]),
                "market": row["market"],
                "side": row["side"],
                "price": format_decimal(row["price"]),
                "quantity": format_decimal(row["quantity"]),
                "quote_quantity": format_decimal(row["quote_quantity"]),
                "is_maker": row["is_maker"],
                "timestamp": to_ms(row["time"]),
            }
            for row in rows
        ]

    async def ledger(
        self, user_id: str, asset: str | None, limit: int, assets: list[str]
    ) -> list[dict]:
        """The user's balance movements (of ``asset``, or of every one of ``assets``), newest
        first; money as integers of minor units (the caller renders them with the asset's
        decimals, which this reader does not know)."""
        if asset is None:
            rows = await self._query(
                statements.LEDGER_ALL_ASSETS, user_id=user_id, assets=list(assets), limit=limit
            )
        else:
            rows = await self._query(statements.LEDGER, user_id=user_id, asset=asset, limit=limit)
        return [
            {
                "id": row["id"],
                "asset": row["asset"],
                "kind": row["kind"],
                "amount": row["amount"],
                "balance": row["balance"],
                "ref": str(row["ref"]),
                "timestamp": row["ts_ms"],
            }
            for row in rows
        ]

    async def ledger_seq(self) -> int:
        """The engine sequence the ledger has reached (0 when it is empty)."""
        return (await self._query(statements.LEDGER_SEQ))[0]["seq"]

    async def ledger_audit(self, up_to_seq: int) -> LedgerAudit:
        """The history's half of the audit: the ledger summed per asset over the commands up
        to ``up_to_seq`` (``seq`` of the reply: the ledger's newest command in that range)."""
        return await self._pool.run(_ledger_audit, up_to_seq)

    async def order(
        self, user_id: str, order_id: int | None = None, client_order_id: str | None = None
    ) -> dict | None:
        """The user's order (its last stored state, with fills) by id or client id, else None."""
        if order_id is not None:
            query, params = statements.ORDER_BY_ID, {"order_id": int(order_id)}
        elif client_order_id is not None:
            query, params = statements.ORDER_BY_CLIENT_ID, {"client_order_id": client_order_id}
        else:
            raise ValueError("order_id or client_order_id is required")
        return await self._pool.run(_order_with_fills, query, {"user_id": user_id, **params})

    async def stats_seed(self, markets: list[str], since_ms: int) -> StatsSeed:
        """What the WebSocket server needs to start its statistics, from one snapshot.

        Per market: the trades since ``since_ms`` summed per second, and the latest bucket of
        every kline interval; plus the newest trade id of any market in that snapshot.
        """
        since = _moment(since_ms)
        return await self._pool.run(_stats_seed, list(markets), since)


def _klines_statement(
    market: str,
    interval: str,
    start_time: datetime | None,
    end_time: datetime | None,
    limit: int,
) -> tuple[str, dict[str, Any]]:
    """The klines statement and its parameters (ASC from ``start_time``, else the latest DESC)."""
    try:
        width, table, per_bucket = KLINE_INTERVALS[interval]
    except KeyError:
        raise ValueError(f"unknown kline interval {interval!r}") from None
    direction = "ASC" if start_time is not None else "DESC"
    rolled_up = statements.KLINES if per_bucket > 1 else statements.CANDLES
    return rolled_up[(table, direction)], {
        "market": market,
        "width": width,
        "start": None if start_time is None else _utc(start_time),
        "end": None if end_time is None else _utc(end_time),
        "rows": limit * per_bucket,
        "limit": limit,
    }


def _klines_rows(
    conn: psycopg.Connection,
    market: str,
    interval: str,
    start_time: datetime | None,
    end_time: datetime | None,
    limit: int,
) -> list[dict]:
    """The klines statement's rows (newest first without ``start_time``), read in a narrowed
    range first: the :data:`KLINES_WINDOW` * ``limit`` buckets next to ``start_time`` (or before
    ``end_time``, else now). When that range holds ``limit`` buckets they are the wanted ones;
    otherwise (a market with gaps, or quiet lately) the whole range is read.

    A continuous aggregate is a union of materialized and real-time candles, which PostgreSQL
    cannot read in order and stop after ``limit`` rows the way it reads an index: unbounded, it
    reads a market's every candle. Plain tables read the narrowed range as cheaply.
    """
    query, params = _klines_statement(market, interval, start_time, end_time, limit)
    window = KLINES_WINDOW * limit * params["width"]
    if start_time is None:
        narrowed = {**params, "start": (params["end"] or datetime.now(UTC)) - window}
    else:
        last = params["start"] + window
        narrowed = {**params, "end": last if params["end"] is None else min(last, params["end"])}
    rows = _rows(conn, query, narrowed)
    if len(rows) < limit:
        rows = _rows(conn, query, params)
    return rows


@attrs.frozen
class StatsSeed:
    """Raw history for :meth:`exchange.marketstats.MarketStats.seed_history` (money as Decimal).

    ``seconds[market]``: rows ``start_ms, open, high, low, close, volume, quote_volume, trades,
    first_id, last_id``, oldest first. ``klines[market][interval]``: the latest bucket as a row
    ``start_ms, open, high, low, close, volume, quote_volume, trades`` (absent without trades).
    """

    last_trade_id: int
    seconds: dict[str, list[dict[str, Any]]]
    klines: dict[str, dict[str, dict[str, Any]]]


def _stats_seed(conn: psycopg.Connection, markets: list[str], since: datetime) -> StatsSeed:
    with conn.transaction():
        conn.execute(statements.BEGIN_SNAPSHOT)
        last_trade_id = _rows(conn, statements.LAST_TRADE_ID, {})[0]["id"] or 0
        seconds: dict[str, list[dict[str, Any]]] = {}
        klines: dict[str, dict[str, dict[str, Any]]] = {}
        for market in markets:
            rows = _rows(conn, statements.TICKER_SECONDS, {"market": market, "since": since})
            for row in rows:
                row["start_ms"] = to_ms(row.pop("second"))
                row["trades"] = int(row["trades"])
            seconds[market] = rows
            latest = klines[market] = {}
            for interval in KLINE_INTERVALS:
                for row in _klines_rows(conn, market, interval, None, None, 1):
                    row["start_ms"] = to_ms(row.pop("start"))
                    row["trades"] = int(row["trades"])
                    latest[interval] = row
    return StatsSeed(last_trade_id, seconds, klines)


def _ledger_audit(conn: psycopg.Connection, up_to_seq: int) -> LedgerAudit:
    """Both reads in one snapshot, so the sums and the sequence describe the same rows."""
    with conn.transaction():
        conn.execute(statements.BEGIN_SNAPSHOT)
        reached = _rows(conn, statements.LEDGER_SEQ, {})[0]["seq"]
        seq = min(reached, up_to_seq)
        rows = _rows(conn, statements.LEDGER_AUDIT, {"seq": seq, "fee_account": FEE_ACCOUNT})
    assets = {
        row["asset"]: AssetTotals(
            int(row["deposits"]), int(row["withdrawals"]), int(row["users"]), int(row["fees"])
        )
        for row in rows
    }
    return LedgerAudit(seq, seq, assets)


def _order_with_fills(conn: psycopg.Connection, query: str, params: dict) -> dict | None:
    rows = _rows(conn, query, params)
    if not rows:
        return None
    order = _order(rows[0])
    fills = _rows(conn, statements.ORDER_FILLS, {"order_id": rows[0]["order_id"]})
    order["fills"] = [
        {
            "trade_id": fill["id"],
            "price": format_decimal(fill["price"]),
            "quantity": format_decimal(fill["quantity"]),
        }
        for fill in fills
    ]
    return order


@contextlib.asynccontextmanager
async def open_history_reader(database_url: str, **options: Any) -> AsyncIterator[HistoryQueries]:
    """An open :class:`HistoryQueries` (``options`` as it takes them), its replica watched,
    closed on exit (PostgreSQL may still be down on entry)."""
    queries = HistoryQueries(database_url, **options)
    await queries.open()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(queries.watch_replica)
            yield queries
            nursery.cancel_scope.cancel()
    finally:
        await queries.aclose()
