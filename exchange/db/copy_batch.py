"""One batch of the events' rows into PostgreSQL: COPY, upsert, and the candles settled.

The db writer's transaction (:func:`copy_rows`) COPYs a batch into per-session staging tables
and upserts from them with one statement per table (:mod:`exchange.history.statements`), so a
redelivered or replayed batch changes nothing. Trades written behind a continuous aggregate's
horizon show in the candles once :func:`settle_candles` has refreshed their buckets; the
consumer (:mod:`exchange.db.consumer`) decides when, :func:`write_rows` does both at once.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import operator
from collections.abc import Iterator

import psycopg

from exchange.db.rows import EntryRows
from exchange.history import statements
from exchange.retry import retry_blocking

log = logging.getLogger(__name__)

# Position of the millisecond time in a trade row (trades_staging's column order).
_TRADE_TS = 1


def prepare_connection(conn: psycopg.Connection) -> None:
    """Create the session's staging tables (once per connection, before :func:`write_rows`)."""
    for statement in statements.CREATE_STAGING:
        conn.execute(statement)


def write_rows(conn: psycopg.Connection, rows: EntryRows) -> None:
    """:func:`copy_rows`, then the candles of its trades settled: once it returns, klines show
    every trade written (``conn`` in autocommit, as :func:`settle_candles` needs)."""
    copy_rows(conn, rows)
    span = trade_span(rows)
    if span is not None:
        settle_candles(conn, *span)


def trade_span(rows: EntryRows) -> tuple[int, int] | None:
    """The oldest and newest millisecond times of ``rows``' trades (None without trades)."""
    if not rows.trades:
        return None
    times = [row[_TRADE_TS] for row in rows.trades]
    return min(times), max(times)


def copy_rows(conn: psycopg.Connection, rows: EntryRows) -> None:
    """One transaction: COPY into the staging tables, then one upsert per table (the ledger's
    movements with the trades that made them, so neither is ever written without the other).
    Trades written
    behind a candle horizon show in the klines once settled (:func:`settle_candles`)."""
    with conn.transaction(), conn.cursor() as cur:
        if rows.trades:
            with cur.copy(statements.COPY_TRADES) as copy:
                for row in rows.trades:
                    copy.write_row(row)
            cur.execute(statements.INSERT_TRADES)
        if rows.orders:
            with cur.copy(statements.COPY_ORDERS) as copy:
                for row in rows.orders:
                    copy.write_row(row)
            cur.execute(statements.UPSERT_ORDERS)
        for table, run in _ledger_runs(rows):
            copy_ledger(cur, table, run)


def _ledger_runs(rows: EntryRows) -> Iterator[tuple[statements.LedgerTable, list]]:
    """The ledger's rows in their order, (seq, idx), as runs of one table each: written run
    by run, the rows draw their ids from the tables' one sequence in the ledger's order."""
    if not (rows.movements and rows.fills):  # the common case: at most one run
        runs = (
            (statements.LEDGER_MOVEMENTS, rows.movements),
            (statements.LEDGER_FILLS, rows.fills),
        )
        yield from ((table, run) for table, run in runs if run)
        return
    tagged = heapq.merge(
        ((row[:2], statements.LEDGER_MOVEMENTS, row) for row in rows.movements),
        ((row[:2], statements.LEDGER_FILLS, row) for row in rows.fills),
        key=operator.itemgetter(0),
    )
    for table, run in itertools.groupby(tagged, key=operator.itemgetter(1)):
        yield table, [row for _, _, row in run]


def copy_ledger(cur: psycopg.Cursor, table: statements.LedgerTable, rows: list) -> None:
    """``rows`` COPYed straight into ``table``; if its key refuses them (a redelivered batch,
    written before), through its staging table, inserting only what is missing.

    The direct COPY is the common case and skips the staged path's second pass and conflict
    checks; the savepoint confines a refusal to it.
    """
    try:
        with cur.connection.transaction():
            _copy_binary(cur, table.copy, table.types, rows)
    except psycopg.errors.UniqueViolation:
        log.info("%s: %d rows redelivered; inserting the missing ones", table.table, len(rows))
        _copy_binary(cur, table.copy_staging, table.types, rows)
        cur.execute(table.insert_missing)


class LedgerRowRefused(psycopg.DataError):
    """A ledger row whose value the binary COPY cannot dump as its column's type (a text or a
    too large number where an integer goes): refused as data, as PostgreSQL refuses it in a
    text COPY, so the consumer dead-letters its entry instead of stopping."""


def _copy_binary(cur: psycopg.Cursor, statement: str, types: list[str], rows: list) -> None:
    with cur.copy(statement) as copy:
        copy.set_types(types)
        try:
            for row in rows:
                copy.write_row(row)
        except (TypeError, ValueError, OverflowError) as exc:
            raise LedgerRowRefused(f"ledger row not writable: {exc}") from exc


def settle_candles(conn: psycopg.Connection, oldest_ms: int, newest_ms: int) -> None:
    """Make trades written between ``oldest_ms`` and ``newest_ms`` show in the candles (a
    no-op unless some are older than a continuous aggregate's horizon).

    TimescaleDB refuses a refresh that overlaps one in progress (a refresh policy's, another
    writer's) rather than waiting for it; ours is retried until that one is done, since it may
    not have seen our trades.
    """
    params = {"oldest_ms": oldest_ms, "newest_ms": newest_ms}
    retry_blocking(
        conn.execute,
        statements.SETTLE_CANDLES,
        params,
        retry_on=psycopg.errors.LockNotAvailable,
        on_failure=lambda exc, delay, _: log.debug(
            "candles refresh waits for a concurrent one (%s); %.2fs", exc, delay
        ),
    )
