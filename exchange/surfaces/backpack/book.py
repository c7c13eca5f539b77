"""One market's whole order book, rebuilt from a depth snapshot plus the published depth diffs.

Backpack's ``bookTicker.M`` needs the best bid and ask with their aggregated sizes after every
depth change, but a diff only names the levels it changed: whether the best level went away is
known only with the whole book at hand. So a :class:`BookTracker` keeps every level (integer
ticks → integer lots, in a ``SortedDict`` per side; exact, no rounding anywhere) and is fed:

- :meth:`BookTracker.apply` for each depth diff (the engine's ``DepthChanged``:
  ``first_update_id`` … ``last_update_id``, absolute level quantities, 0 deletes). Until a snapshot has been loaded diffs are only
  kept; a diff that does not follow the book's ``last_update_id`` (a lost pub/sub message) drops
  the book and asks for a new snapshot.
- :meth:`BookTracker.load` for an engine snapshot (``models.Depth``): the kept diffs newer than it
  are replayed on top. Sizes are absolute, so a diff straddling the snapshot's id applies cleanly.

Pure: no I/O, no clock. The glue to the ws hub is :mod:`exchange.surfaces.backpack.book_ticker`.
"""

from __future__ import annotations

import enum
from collections import deque

import attrs
from sortedcontainers import SortedDict

from exchange.markets import Market
from exchange.models import Depth, DepthChanged

# Diffs kept while waiting for a snapshot; past this the oldest go, and the replay then finds a
# gap and asks for a newer snapshot instead of growing without bound (engine down for long).
MAX_PENDING_DIFFS = 10_000


class Applied(enum.Enum):
    PENDING = "pending"  # not synced yet: kept for the snapshot
    STALE = "stale"  # already in the book (older than the snapshot)
    APPLIED = "applied"
    GAP = "gap"  # a diff was lost: the book is dropped; fetch a snapshot


@attrs.frozen
class Top:
    """Best bid and ask as ``(price_ticks, quantity_lots)``, None for an empty side."""

    bid: tuple[int, int] | None
    ask: tuple[int, int] | None


class BookTracker:
    def __init__(self, market: Market, max_pending: int = MAX_PENDING_DIFFS) -> None:
        self.market = market
        self.bids: SortedDict = SortedDict()  # ticks → lots; best is the last key
        self.asks: SortedDict = SortedDict()  # best is the first key
        self.last_update_id: int | None = None  # None until a snapshot is loaded
        self._pending: deque[DepthChanged] = deque(maxlen=max_pending)

    @property
    def synced(self) -> bool:
        return self.last_update_id is not None

    def load(self, depth: Depth) -> bool:
        """Take a snapshot and replay the kept diffs on it; False if they leave a gap.

        On False the book is unsynced again (keeping the diffs after the gap) and needs a newer
        snapshot.
        """
        self.bids = SortedDict(depth.bids)
        self.asks = SortedDict(depth.asks)
        self.last_update_id = depth.last_update_id
        pending, self._pending = self._pending, deque(maxlen=self._pending.maxlen)
        while pending:
            if self.apply(pending.popleft()) is Applied.GAP:
                self._pending.extend(pending)
                return False
        return True

    def apply(self, diff: DepthChanged) -> Applied:
        """Apply one depth diff."""
        last = self.last_update_id
        if last is None:
            self._pending.append(diff)
            return Applied.PENDING
        if diff.last_update_id <= last:
            return Applied.STALE
        if diff.first_update_id > last + 1:
            self._drop()
            self._pending.append(diff)
            return Applied.GAP
        self._update(self.bids, diff.bids)
        self._update(self.asks, diff.asks)
        self.last_update_id = diff.last_update_id
        return Applied.APPLIED

    def top(self) -> Top:
        bid = self.bids.peekitem(-1) if self.bids else None
        ask = self.asks.peekitem(0) if self.asks else None
        return Top(bid, ask)

    @staticmethod
    def _update(side: SortedDict, levels: tuple[tuple[int, int], ...]) -> None:
        for ticks, lots in levels:
            if lots:
                side[ticks] = lots
            else:
                side.pop(ticks, None)

    def _drop(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.last_update_id = None
