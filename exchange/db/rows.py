"""Events-stream entries → rows for the staging tables (pure: no I/O).

An entry of the events stream is one engine batch: field ``events`` holds a JSON array of
:func:`exchange.views.event_json` dicts, each with the ``seq`` of the command that produced it.
Trades and orders become tuples in the column order of ``trades_staging`` and
``orders_staging`` (see :mod:`exchange.history.statements`); money stays the exact decimal text the
engine wrote, and PostgreSQL parses it into NUMERIC. Balance and depth events are not stored
(balances live in the engine; depth is live data).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable

import attrs
import orjson

from exchange.names import EVENTS_FIELD

TradeRow = tuple
OrderRow = tuple

# Rows are picked straight out of the decoded JSON with itemgetter (C speed: the writer's
# throughput is bound by this loop); values keep their JSON types, and PostgreSQL checks and
# converts them as it reads the staging tables (ids sent as text are read as bigint).
_trade_row = operator.itemgetter(
    "id", "timestamp", "market", "price", "quantity", "quote_quantity", "is_buyer_maker",
    "buy_order_id", "sell_order_id", "buyer_id", "seller_id", "seq",
)  # fmt: skip
_order_fields = operator.itemgetter(
    "order_id", "client_order_id", "market", "side", "type", "price", "quantity",
    "quote_quantity", "executed_quantity", "executed_quote_quantity", "status",
    "time_in_force", "post_only", "self_trade_prevention", "created_at", "updated_at",
)  # fmt: skip
# Positions in an order row: the newest state of an order wins.
_ORDER_ID, _ORDER_UPDATED, _ORDER_SEQ = 0, 15, 17


class BadEntry(ValueError):
    """An entry that is not an array of well-formed events (it can never be written)."""


@attrs.frozen
class EntryRows:
    """The rows of one stream entry."""

    trades: list[TradeRow]
    orders: list[OrderRow]


def decode_entry(fields: dict[bytes, bytes] | None) -> EntryRows:
    """Rows of one entry's trade and order events.

    Raises:
        BadEntry: the entry is missing its events, is not JSON, or an event lacks a field.
    """
    if not fields or EVENTS_FIELD not in fields:
        raise BadEntry("entry has no events field")
    try:
        events = orjson.loads(fields[EVENTS_FIELD])
        trades = [_trade_row(event) for event in events if event["type"] == "trade"]
        orders = [
            (*_order_fields(event["order"]), event["user_id"], event["seq"])
            for event in events
            if event["type"] == "order"
        ]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise BadEntry(f"malformed events: {exc!r}") from None
    return EntryRows(trades, orders)


def merge(entries: Iterable[EntryRows]) -> EntryRows:
    """All trades, and the newest state of each order, of several entries.

    One upsert statement may not touch a row twice, so an order changed by several commands of
    the batch keeps only its newest state: the highest (seq, updated_at), the later one on a tie
    (events of a command come in the order the engine produced them).
    """
    trades: list[TradeRow] = []
    newest: dict[int, OrderRow] = {}
    for entry in entries:
        trades.extend(entry.trades)
        for row in entry.orders:
            held = newest.get(row[_ORDER_ID])
            if held is None or (row[_ORDER_SEQ], row[_ORDER_UPDATED]) >= (
                held[_ORDER_SEQ],
                held[_ORDER_UPDATED],
            ):
                newest[row[_ORDER_ID]] = row
    return EntryRows(trades, list(newest.values()))
