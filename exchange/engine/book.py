"""One market's order book: price levels of FIFO queues, and nothing about balances.

Each side keeps a ``SortedList`` of prices (best bid is the last, best ask the first) and a
``dict`` per price holding that level's orders in arrival order. A plain dict is both the FIFO
queue and the index, so cancelling any order is O(1) and popping the head is O(1), which a
deque (O(n) removal) or a linked list (more Python objects per order) would not both give.

The book also counts level changes for the market's depth update-id sequence: every level whose
total changed during a command takes the next id when :meth:`Book.take_depth_change` is called.
Stop orders waiting for their trigger are not here (:mod:`.stops`).
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs
from sortedcontainers import SortedList

from exchange.models import (
    DepthChanged,
    Fill,
    OrderStatus,
    OrderType,
    OrderView,
    SelfTradePrevention,
    Side,
    TimeInForce,
)


@attrs.define(eq=False)
class Order:
    """An order's mutable state inside the engine (``remaining`` in lots, ``locked`` in minor
    units of the asset it spends). A stop order waits in :mod:`.stops`, not in a book."""

    order_id: int
    user_id: str
    client_order_id: str | None
    market: str
    side: Side
    type: OrderType
    price: int | None
    quantity: int | None
    quote_quantity: int | None
    time_in_force: TimeInForce
    post_only: bool
    self_trade_prevention: SelfTradePrevention
    created_at: int
    updated_at: int
    remaining: int = 0
    locked: int = 0
    executed_quantity: int = 0
    executed_quote_quantity: int = 0
    status: OrderStatus = OrderStatus.NEW
    fills: list[Fill] = attrs.Factory(list)
    trigger_price: int | None = None
    triggered_at: int | None = None

    def view(self, with_fills: bool = False) -> OrderView:
        return OrderView(
            self.order_id,
            self.user_id,
            self.client_order_id,
            self.market,
            self.side,
            self.type,
            self.price,
            self.quantity,
            self.quote_quantity,
            self.executed_quantity,
            self.executed_quote_quantity,
            self.status,
            self.time_in_force,
            self.post_only,
            self.self_trade_prevention,
            self.created_at,
            self.updated_at,
            tuple(self.fills) if with_fills else (),
            self.trigger_price,
            self.triggered_at,
        )


class Book:
    """Resting orders of one market, by side and price."""

    def __init__(self, market: str, update_id: int = 0) -> None:
        self.market = market
        self.update_id = update_id
        self._prices = {Side.BUY: SortedList(), Side.SELL: SortedList()}
        self._levels: dict[Side, dict[int, dict[int, Order]]] = {Side.BUY: {}, Side.SELL: {}}
        self._totals: dict[Side, dict[int, int]] = {Side.BUY: {}, Side.SELL: {}}
        # (side, price) → the level's total before this command changed it
        self._changed: dict[tuple[Side, int], int] = {}

    # --- reading -------------------------------------------------------------------------------

    def best_price(self, side: Side) -> int | None:
        prices = self._prices[side]
        if not prices:
            return None
        return prices[-1] if side is Side.BUY else prices[0]

    def prices_from_best(self, side: Side) -> Iterator[int]:
        """Prices of ``side`` from best to worst, lazily: do not change the book meanwhile."""
        prices = self._prices[side]
        return reversed(prices) if side is Side.BUY else iter(prices)

    def level(self, side: Side, price: int) -> dict[int, Order]:
        """The orders at one price in time priority (empty if none)."""
        return self._levels[side].get(price, {})

    def levels(self, side: Side, limit: int | None = None) -> list[tuple[int, int]]:
        """Aggregated ``(price, quantity)`` from the best price on."""
        totals = self._totals[side]
        out = []
        for price in self.prices_from_best(side):
            if limit is not None and len(out) >= limit:
                break
            out.append((price, totals[price]))
        return out

    def total_at(self, side: Side, price: int) -> int:
        return self._totals[side].get(price, 0)

    def is_crossed(self) -> bool:
        bid, ask = self.best_price(Side.BUY), self.best_price(Side.SELL)
        return bid is not None and ask is not None and bid >= ask

    def resting_orders(self) -> Iterator[Order]:
        """Every resting order, side by side, level by level, in time priority."""
        for side in (Side.BUY, Side.SELL):
            for price in self._prices[side]:
                yield from self._levels[side][price].values()

    # --- changing ------------------------------------------------------------------------------

    def add(self, order: Order) -> None:
        """Rest ``order`` (its ``price`` and ``remaining`` set) at the back of its level."""
        side, price = order.side, order.price
        levels = self._levels[side]
        level = levels.get(price)
        totals = self._totals[side]
        if level is None:
            level = levels[price] = {}
            self._prices[side].add(price)
            totals[price] = 0
        level[order.order_id] = order
        self._note_change(side, price, totals[price])
        totals[price] += order.remaining

    def remove(self, order: Order) -> None:
        """Take a resting order out of the book."""
        side, price = order.side, order.price
        level = self._levels[side][price]
        del level[order.order_id]
        self._note_change(side, price, self._totals[side][price])
        self._totals[side][price] -= order.remaining
        if not level:
            self._drop_level(side, price)

    def reduce(self, order: Order, lots: int) -> None:
        """A resting order traded ``lots``; it leaves the book when nothing remains."""
        side, price = order.side, order.price
        order.remaining -= lots
        self._note_change(side, price, self._totals[side][price])
        self._totals[side][price] -= lots
        if order.remaining == 0:
            level = self._levels[side][price]
            del level[order.order_id]
            if not level:
                self._drop_level(side, price)

    def _note_change(self, side: Side, price: int, total_before: int) -> None:
        """Remember a level's total from before the first change of this command."""
        key = (side, price)
        if key not in self._changed:
            self._changed[key] = total_before

    def _drop_level(self, side: Side, price: int) -> None:
        del self._levels[side][price]
        del self._totals[side][price]
        self._prices[side].remove(price)

    def take_depth_change(self, timestamp: int) -> DepthChanged | None:
        """The levels whose total changed since the last call, each taking the next update id.

        A level that changed and came back (a stop triggered by a trade can rest where the trade
        took) is no change.
        """
        if not self._changed:
            return None
        bids, asks = [], []
        for (side, price), total_before in self._changed.items():
            total = self._totals[side].get(price, 0)
            if total != total_before:
                (bids if side is Side.BUY else asks).append((price, total))
        self._changed.clear()
        if not bids and not asks:
            return None
        bids.sort(reverse=True)
        asks.sort()
        first = self.update_id + 1
        self.update_id += len(bids) + len(asks)
        return DepthChanged(self.market, first, self.update_id, tuple(bids), tuple(asks), timestamp)
