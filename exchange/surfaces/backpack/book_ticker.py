"""Backpack's ``bookTicker.M``: the best bid and ask, sent whenever the top of the book changes.

Only markets with a ``bookTicker`` subscriber are tracked. The first subscriber creates a
:class:`~exchange.surfaces.backpack.book.BookTracker`, which keeps the market's diffs while the hub fetches
a depth snapshot from the engine (the same coalesced rounds the native ``depth@`` clients use,
so a burst of subscribers costs one engine query); the last one leaving drops it. After that:

- every depth diff of the market goes to the tracker (from :meth:`BackpackTopics.market_events`,
  inside the hub's dispatch); when the top (prices *and* sizes) differs from the last one sent, one
  frame goes to the topic's subscribers;
- a subscriber joining a synced market gets the current top at once; one joining while the
  snapshot is on its way gets it when the snapshot lands;
- a lost diff (pub/sub reconnect) drops the book and fetches a new snapshot; the subscribers hear
  nothing until it is rebuilt, then the new top if it differs from the last one they got.

Frames: ``{"stream": "bookTicker.M", "data": {"e": "bookTicker", "E", "T" (microseconds), "s",
"a", "A", "b", "B" (price and size; null for an empty side), "u" (the depth update id)}}``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import orjson

from exchange.markets import MarketConfig
from exchange.models import Depth, DepthChanged, Event
from exchange.surfaces.backpack.book import Applied, BookTracker, Top
from exchange.ws.frames import Frame

if TYPE_CHECKING:
    from exchange.ws.hub import Client, Hub

log = logging.getLogger(__name__)

TOPIC = "bookTicker"


def hub_topic(symbol: str) -> str:
    return f"bp|{TOPIC}.{symbol}"


class _Market:
    """A tracked market: its book, the last top sent and who still waits for a first frame."""

    __slots__ = ("book", "sent", "frame", "waiting")

    def __init__(self, book: BookTracker) -> None:
        self.book = book
        self.sent: Top | None = None
        self.frame: Frame | None = None  # the frame of ``sent``
        self.waiting: set[Client] = set()


class _SnapshotWaiter:
    """Queued on the hub's snapshot rounds (:meth:`Hub.request_depth`); it gets the Depth."""

    __slots__ = ("hub", "owner", "symbol", "tracked")

    def __init__(self, owner: BookTickers, hub: Hub, symbol: str, tracked: _Market) -> None:
        self.owner, self.hub, self.symbol, self.tracked = owner, hub, symbol, tracked

    def take_depth(self, depth: Depth) -> None:
        # Runs in the hub's snapshot task, outside its dispatch: an error must not escape.
        try:
            self.owner.snapshot_loaded(self.hub, self.symbol, self.tracked, depth)
        except Exception:
            log.exception("cannot rebuild the book of %s; starting over", self.symbol)
            self.tracked.book = BookTracker(self.tracked.book.market)
            self.owner._fetch_snapshot(self.hub, self.symbol, self.tracked)


class BookTickers:
    def __init__(self, config: MarketConfig) -> None:
        self.config = config
        self.markets: dict[str, _Market] = {}

    # --- subscribers ----------------------------------------------------------------------------

    def joined(self, hub: Hub, client: Client, symbol: str) -> None:
        """``client`` (already registered on the hub topic) subscribed to ``bookTicker.symbol``."""
        tracked = self.markets.get(symbol)
        if tracked is None:
            tracked = self.markets[symbol] = _Market(BookTracker(self.config.markets[symbol]))
            self._fetch_snapshot(hub, symbol, tracked)
        if tracked.book.synced and tracked.frame is not None:
            client.deliver((tracked.frame,))
        else:
            tracked.waiting.add(client)

    def left(self, hub: Hub, client: Client, symbol: str) -> None:
        """``client`` (already unregistered) left; the last one stops the tracking."""
        tracked = self.markets.get(symbol)
        if tracked is None:
            return
        tracked.waiting.discard(client)
        if not hub.wants(hub_topic(symbol)):
            del self.markets[symbol]

    # --- book updates ---------------------------------------------------------------------------

    def market_events(self, hub: Hub, symbol: str, events: list[Event]) -> None:
        tracked = self.markets.get(symbol)
        if tracked is None:
            return
        for event in events:
            if type(event) is not DepthChanged:
                continue
            applied = tracked.book.apply(event)
            if applied is Applied.APPLIED:
                frame = self._changed(tracked, event.last_update_id, event.timestamp)
                if frame is not None:
                    hub.publish(hub_topic(symbol), (frame,))
            elif applied is Applied.GAP:
                log.warning("depth gap on %s; rebuilding its book from a snapshot", symbol)
                self._fetch_snapshot(hub, symbol, tracked)

    def snapshot_loaded(self, hub: Hub, symbol: str, tracked: _Market, depth: Depth) -> None:
        if self.markets.get(symbol) is not tracked or tracked.book.synced:
            return  # nobody listens any more (or a late duplicate)
        if not tracked.book.load(depth):
            self._fetch_snapshot(hub, symbol, tracked)  # the snapshot was older than a gap
            return
        changed = self._changed(tracked, tracked.book.last_update_id, depth.timestamp)
        clients, tracked.waiting = tracked.waiting, set()
        if changed is not None:
            clients |= set(hub.subscribers(hub_topic(symbol)))
        for client in clients:
            client.deliver((tracked.frame,))

    # --- helpers --------------------------------------------------------------------------------

    def _fetch_snapshot(self, hub: Hub, symbol: str, tracked: _Market) -> None:
        hub.request_depth(symbol, _SnapshotWaiter(self, hub, symbol, tracked))

    def _changed(self, tracked: _Market, update_id: int, timestamp_ms: int) -> Frame | None:
        """A frame for the book's top if it differs from the last one sent (then remembered)."""
        top = tracked.book.top()
        if top == tracked.sent and tracked.frame is not None:
            return None
        tracked.sent, tracked.frame = top, self.frame(tracked.book, top, update_id, timestamp_ms)
        return tracked.frame

    @staticmethod
    def frame(book: BookTracker, top: Top, update_id: int, timestamp_ms: int) -> Frame:
        market, micros = book.market, timestamp_ms * 1000
        bid, ask = top.bid, top.ask
        data = {
            "e": TOPIC,
            "E": micros,
            "s": market.symbol,
            "a": None if ask is None else market.format_price(ask[0]),
            "A": None if ask is None else market.format_quantity(ask[1]),
            "b": None if bid is None else market.format_price(bid[0]),
            "B": None if bid is None else market.format_quantity(bid[1]),
            "u": update_id,
            "T": micros,
        }
        stream = f"{TOPIC}.{market.symbol}"
        return Frame.of(orjson.dumps({"stream": stream, "data": data}))
