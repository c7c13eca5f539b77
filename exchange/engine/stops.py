"""One market's stop orders waiting for their trigger price, kept apart from the book.

A stop order (a limit or market order with a ``trigger_price``) waits with status
``trigger_pending`` until a trade in its market prints at or through its trigger, from the side
it was placed on: a trigger above the last trade price at placement waits for a trade at a price
≥ it ("rising"), one below for a trade at a price ≤ it ("falling"). Waiting orders are never in
the book's depth and never trade. Funds are locked at placement as for the same order without a
trigger, except a market buy by quantity, which locks nothing and spends what is available when
it runs.

The index is two sorted maps of FIFO levels (``{trigger_price: {order_id: Order}}``, as the book
keeps its levels): rising triggers in ascending order and falling ones read from the top. Every
trade moves the last price, and since every order that a trade reaches is taken out at once,
all waiting rising triggers are above the last price and all falling ones below it. So a trade
only has to compare its price with two numbers, the lowest rising trigger and the highest
falling one (:attr:`PendingStops.rise_at`, :attr:`PendingStops.fall_at`); when it reaches
them, the levels it passed come off in the order the price reached them (rising: lowest
trigger first; falling: highest first), each level oldest first. A heap would give the same
order but not O(1) cancel; a scan of all waiting orders per trade would cost what the trade
costs many times over.

What the engine does with a triggered order (:mod:`.core`): it runs, right after the command
whose trade triggered it and before any later command, as an ordinary order that keeps its
``order_id``; ``triggered_at`` is the timestamp of that command. Orders triggered by the trades
of a triggered order queue behind those already triggered (a cascade, in the order the price
reached them). A triggered limit order that rests enters its price level at the back, behind
orders placed while it waited: time priority is the time an order reaches the book. The
command's reply shows its own order as its own matching left it; what triggered stops then do
to that order (as their maker) follows in the command's events.

Events: placing a stop emits its ``OrderUpdated`` (``trigger_pending``); triggering emits one
with status ``new``, ``triggered_at`` set and nothing executed (no other event of an order looks
like that, so a surface can tell the trigger apart), then, if matching changed the order,
another with the result, as the taker's event of any placement. Balances and depth are reported
once per command, after every triggered order ran.

``TriggerFailed`` (Backpack's status): a triggered order that cannot run. Funds were locked at
placement, so the only case is a market buy by quantity that finds no quote available when it
triggers; it ends ``rejected`` with ``triggered_at`` set and nothing executed. A surface tells
it from a refused post-only order (the other ``rejected``) by its ``trigger_price``: post-only
orders take no trigger. Every other outcome of a triggered order is an ordinary status
(``new``, ``partially_filled``, ``filled``, ``expired``), ``TriggerPending`` is
``trigger_pending``, and a cancelled stop is ``cancelled`` whether or not it had triggered.
"""

from __future__ import annotations

from collections.abc import Iterator

from sortedcontainers import SortedDict

from exchange.engine.book import Order
from exchange.errors import ErrorCode
from exchange.models import Rejection

# Thresholds when no order waits on a side: no price reaches them (prices are positive ticks
# far below 2**62).
NO_RISING = 1 << 62
NO_FALLING = 0


class PendingStops:
    """The waiting stop orders of one market, and that market's last trade price."""

    def __init__(self, last_price: int | None = None) -> None:
        self.last_price = last_price
        self._rising: SortedDict = SortedDict()  # trigger → {order_id: Order}, price ≥ trigger
        self._falling: SortedDict = SortedDict()  # trigger → {order_id: Order}, price ≤ trigger
        self.rise_at = NO_RISING  # the lowest rising trigger
        self.fall_at = NO_FALLING  # the highest falling trigger

    def refuse(self, trigger_price: int) -> Rejection | None:
        """Why a new stop with ``trigger_price`` cannot wait here, or ``None``."""
        if self.last_price is None:
            return Rejection(
                ErrorCode.INVALID_PRICE, "no trade in this market yet: a trigger_price needs one"
            )
        if trigger_price == self.last_price:
            return Rejection(ErrorCode.INVALID_PRICE, "trigger_price equals the last trade price")
        return None

    def add(self, order: Order) -> None:
        """Let ``order`` wait; its direction is read against the last price (see :meth:`refuse`)."""
        trigger = order.trigger_price
        rising = trigger > self.last_price
        levels = self._rising if rising else self._falling
        level = levels.get(trigger)
        if level is None:
            level = levels[trigger] = {}
        level[order.order_id] = order
        if rising:
            self.rise_at = min(self.rise_at, trigger)
        else:
            self.fall_at = max(self.fall_at, trigger)

    def restore(self, rising: bool, trigger: int, order: Order) -> None:
        """Put back an order read from a snapshot, behind those already at its trigger."""
        levels = self._rising if rising else self._falling
        levels.setdefault(trigger, {})[order.order_id] = order
        self._refresh()

    def remove(self, order: Order) -> None:
        """Take a waiting order out (it was cancelled)."""
        trigger = order.trigger_price
        for levels in (self._rising, self._falling):
            level = levels.get(trigger)
            if level is not None and level.pop(order.order_id, None) is not None:
                if not level:
                    del levels[trigger]
                    self._refresh()
                return
        raise KeyError(order.order_id)

    def take_triggered(self, price: int) -> list[Order]:
        """Orders a trade at ``price`` reaches, in the order it reaches them, taken out."""
        out: list[Order] = []
        rising = self._rising
        while rising and rising.peekitem(0)[0] <= price:
            out.extend(rising.popitem(0)[1].values())
        falling = self._falling
        while falling and falling.peekitem(-1)[0] >= price:
            out.extend(falling.popitem(-1)[1].values())
        self._refresh()
        return out

    def _refresh(self) -> None:
        self.rise_at = self._rising.peekitem(0)[0] if self._rising else NO_RISING
        self.fall_at = self._falling.peekitem(-1)[0] if self._falling else NO_FALLING

    def levels(self, rising: bool) -> list[tuple[int, list[int]]]:
        """``(trigger, order ids oldest first)`` in triggering order, for snapshots."""
        if rising:
            return [(trigger, list(level)) for trigger, level in self._rising.items()]
        return [(trigger, list(level)) for trigger, level in reversed(self._falling.items())]

    def orders(self) -> Iterator[Order]:
        """Every waiting order (rising, then falling; each in triggering order)."""
        for trigger, _ in self.levels(True):
            yield from self._rising[trigger].values()
        for trigger, _ in self.levels(False):
            yield from self._falling[trigger].values()
