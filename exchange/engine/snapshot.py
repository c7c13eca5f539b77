"""The whole engine state ⇄ bytes, in a stable, versioned format.

The format is zlib-compressed JSON (orjson): an object with ``format``, ``version`` and the
state. Orders are fixed-order arrays (the field list is written in the snapshot itself), books
list each level's order ids in time priority, and everything derivable (open orders per user,
client-id index) is rebuilt on load. JSON keeps snapshots readable and portable across Python
versions, which pickle would not; zlib keeps them small.

Version 2 added stop orders: each book also holds its market's last trade price and the ids of
its waiting stops by trigger (``rising`` and ``falling``, in triggering order). A version 1
snapshot still loads: its orders lack the trigger fields (they default to none), no stop waits,
and each market's last trade price is that of the newest fill the remembered orders hold.

Version 3 added the audit's sums: deposits and withdrawals per asset and the last command that
moved funds. An older snapshot loads as if what it holds had been deposited (nothing withdrawn,
last movement 0), so the engine's audit starts balanced; the history's ledger starts at the
upgrade.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import deque

import attrs
import orjson

from exchange.engine.book import Book, Order
from exchange.engine.core import Engine
from exchange.engine.stops import PendingStops
from exchange.markets import MarketConfig
from exchange.models import (
    Fill,
    OrderStatus,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
)

FORMAT = "exchange-engine-snapshot"
VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
ORDER_FIELDS = [f.name for f in attrs.fields(Order)]
_ENUMS = {
    "side": Side,
    "type": OrderType,
    "time_in_force": TimeInForce,
    "self_trade_prevention": SelfTradePrevention,
    "status": OrderStatus,
}


class SnapshotError(ValueError):
    """The bytes are not a snapshot this version can read."""


def to_state(engine: Engine) -> dict:
    """The engine's state as plain JSON-ready data."""

    def order_row(order: Order) -> list:
        row = []
        for name in ORDER_FIELDS:
            value = getattr(order, name)
            if name == "fills":
                value = [[f.trade_id, f.price, f.quantity] for f in value]
            row.append(value)
        return row

    books = {}
    for symbol, book in engine.books.items():
        sides = {}
        for side in (Side.BUY, Side.SELL):
            sides[side.value] = [
                [price, list(book.level(side, price))] for price, _ in book.levels(side)
            ]
        stops = engine.stops[symbol]
        books[symbol] = {
            "update_id": book.update_id,
            **sides,
            "last_price": stops.last_price,
            "rising": stops.levels(rising=True),
            "falling": stops.levels(rising=False),
        }
    return {
        "format": FORMAT,
        "version": VERSION,
        "seq": engine.seq,
        "now": engine.now,
        "next_order_id": engine.next_order_id,
        "next_trade_id": engine.next_trade_id,
        "next_user_id": engine.next_user_id,
        "closed_order_retention": engine.closed_order_retention,
        "balances": engine.ledger.balances,
        "deposited": engine.ledger.deposited,
        "withdrawn": engine.ledger.withdrawn,
        "moved_seq": engine.moved_seq,
        "order_fields": ORDER_FIELDS,
        "orders": [order_row(order) for order in engine.orders.values()],
        "closed": list(engine.closed),
        "books": books,
    }


def from_state(state: dict, config: MarketConfig) -> Engine:
    """Rebuild an engine from :func:`to_state` data. Raises SnapshotError."""
    version = state.get("version")
    if state.get("format") != FORMAT or version not in READABLE_VERSIONS:
        raise SnapshotError(f"not an engine snapshot of version {READABLE_VERSIONS}")
    engine = Engine(config, closed_order_retention=state["closed_order_retention"])
    engine.seq = state["seq"]
    engine.now = state["now"]
    engine.next_order_id = state["next_order_id"]
    engine.next_trade_id = state["next_trade_id"]
    # Older snapshots predate CreateUser: starting over at 1 is safe, since it skips every
    # user the ledger knows and ids the credential store had given out (CreateUser.above).
    engine.next_user_id = state.get("next_user_id", 1)
    engine.ledger.balances = {
        user: {asset: list(entry) for asset, entry in assets.items()}
        for user, assets in state["balances"].items()
    }
    if version >= 3:
        engine.ledger.deposited = dict(state["deposited"])
        engine.ledger.withdrawn = dict(state["withdrawn"])
        engine.moved_seq = state["moved_seq"]
    else:
        engine.ledger.deposited = engine.ledger.totals()
        engine.moved_seq = 0  # unknown; the history's ledger starts after it anyway
    fields = state["order_fields"]
    for row in state["orders"]:
        values = dict(zip(fields, row, strict=True))
        for name, enum in _ENUMS.items():
            values[name] = enum(values[name])
        values["fills"] = [Fill(*fill) for fill in values["fills"]]
        order = Order(**values)
        engine.orders[order.order_id] = order
        if order.client_order_id is not None:
            engine.client_ids[(order.user_id, order.client_order_id)] = order.order_id
    engine.closed = deque(state["closed"])
    for symbol, data in state["books"].items():
        if symbol not in config.markets:
            raise SnapshotError(f"snapshot has market {symbol} that is not configured")
        book = engine.books[symbol] = Book(symbol, data["update_id"])
        for side in (Side.BUY, Side.SELL):
            for _price, order_ids in data[side.value]:
                for order_id in order_ids:
                    book.add(engine.orders[order_id])
        book.take_depth_change(0)  # loading is not a change
        book.update_id = data["update_id"]
        if version >= 2:
            stops = engine.stops[symbol] = PendingStops(data["last_price"])
            for rising in (True, False):
                for trigger, order_ids in data["rising" if rising else "falling"]:
                    for order_id in order_ids:
                        stops.restore(rising, trigger, engine.orders[order_id])
    if version == 1:
        for symbol, price in _last_prices_from_fills(engine).items():
            engine.stops[symbol].last_price = price
    open_orders = sorted(
        (
            order
            for symbol, book in engine.books.items()
            for orders in (book.resting_orders(), engine.stops[symbol].orders())
            for order in orders
        ),
        key=lambda order: order.order_id,
    )
    for order in open_orders:
        engine.open_orders.setdefault(order.user_id, {})[order.order_id] = order
    engine.ledger.take_changes()
    return engine


def _last_prices_from_fills(engine: Engine) -> dict[str, int]:
    """Each market's price of the newest trade any remembered order took part in.

    Both orders of a market's newest trade are remembered unless more than the retention of
    orders closed after it; then the newest remembered trade stands in for it.
    """
    newest: dict[str, tuple[int, int]] = {}
    for order in engine.orders.values():
        if order.fills:
            fill = order.fills[-1]
            held = newest.get(order.market)
            if held is None or fill.trade_id > held[0]:
                newest[order.market] = (fill.trade_id, fill.price)
    return {symbol: price for symbol, (_, price) in newest.items()}


def dumps(engine: Engine) -> bytes:
    return zlib.compress(orjson.dumps(to_state(engine)), 1)


def loads(data: bytes, config: MarketConfig) -> Engine:
    try:
        state = orjson.loads(zlib.decompress(data))
    except (zlib.error, orjson.JSONDecodeError) as exc:
        raise SnapshotError(f"unreadable snapshot: {exc}") from None
    if not isinstance(state, dict):
        raise SnapshotError("not an engine snapshot")
    try:
        return from_state(state, config)
    except SnapshotError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SnapshotError(f"malformed snapshot: {exc!r}") from None


def state_hash(engine: Engine) -> str:
    """A digest of the whole state: equal engines have equal hashes."""
    return hashlib.sha256(orjson.dumps(to_state(engine), option=orjson.OPT_SORT_KEYS)).hexdigest()
