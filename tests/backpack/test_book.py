"""The pure top-of-book tracker behind ``bookTicker`` and its glue to the hub (a small fake hub)."""

from __future__ import annotations

import random
from typing import Any

import orjson

from exchange.markets import load_config
from exchange.models import Depth, DepthChanged
from exchange.surfaces.backpack.book import Applied, BookTracker, Top
from exchange.surfaces.backpack.book_ticker import BookTickers, hub_topic

CONFIG = load_config()
MARKET = CONFIG.markets["TATA_INR"]  # tick 0.01, lot 0.01


def diff(first: int, last: int, bids=(), asks=(), ts: int = 1_000) -> DepthChanged:
    """An engine depth event; levels as (ticks, lots)."""
    return DepthChanged("TATA_INR", first, last, tuple(bids), tuple(asks), ts)


def snapshot(last: int, bids=(), asks=(), ts: int = 1_000) -> Depth:
    return Depth("TATA_INR", tuple(bids), tuple(asks), last, ts)


def test_top_follows_diffs_with_absolute_sizes_and_deletes():
    book = BookTracker(MARKET)
    assert book.load(snapshot(10, bids=[(9_900, 100), (9_800, 50)], asks=[(10_100, 7)]))
    assert book.top() == Top((9_900, 100), (10_100, 7))
    assert book.apply(diff(11, 11, bids=[(9_900, 30)])) is Applied.APPLIED  # absolute, not a delta
    assert book.top() == Top((9_900, 30), (10_100, 7))
    assert book.apply(diff(12, 13, bids=[(9_900, 0)], asks=[(10_000, 5)])) is Applied.APPLIED
    assert book.top() == Top((9_800, 50), (10_000, 5))
    assert book.apply(diff(14, 14, bids=[(9_800, 0)], asks=[(10_000, 0), (10_100, 0)]))
    assert book.top() == Top(None, None)
    assert book.last_update_id == 14


def test_diffs_before_the_snapshot_are_kept_and_replayed_past_it():
    book = BookTracker(MARKET)
    assert book.apply(diff(5, 5, bids=[(9_000, 1)])) is Applied.PENDING  # older than snapshot
    assert book.apply(diff(6, 7, bids=[(9_100, 2)], asks=[(9_500, 4)])) is Applied.PENDING
    assert book.apply(diff(8, 8, asks=[(9_500, 0), (9_600, 3)])) is Applied.PENDING
    # the snapshot is at 6: diff 5 is in it, 6..7 straddles it (absolute sizes: harmless), 8 is new
    assert book.load(snapshot(6, bids=[(9_000, 1), (9_100, 2)], asks=[(9_500, 9)]))
    assert book.top() == Top((9_100, 2), (9_600, 3))
    assert book.last_update_id == 8
    assert book.apply(diff(8, 8, asks=[(9_600, 99)])) is Applied.STALE
    assert book.top() == Top((9_100, 2), (9_600, 3))


def test_a_gap_drops_the_book_until_a_newer_snapshot():
    book = BookTracker(MARKET)
    book.load(snapshot(10, bids=[(9_000, 1)]))
    assert book.apply(diff(12, 12, bids=[(9_100, 1)])) is Applied.GAP  # 11 was lost
    assert not book.synced
    assert book.top() == Top(None, None)
    assert book.apply(diff(13, 13, asks=[(9_900, 4)])) is Applied.PENDING
    # a snapshot older than the gap cannot be completed: still unsynced, diffs kept
    assert not book.load(snapshot(10, bids=[(9_000, 1)]))
    assert not book.synced
    assert book.load(snapshot(12, bids=[(9_000, 1), (9_100, 1)]))
    assert book.top() == Top((9_100, 1), (9_900, 4))
    assert book.last_update_id == 13


def test_pending_diffs_are_bounded():
    book = BookTracker(MARKET, max_pending=3)
    for update_id in range(1, 11):
        book.apply(diff(update_id, update_id, bids=[(9_000 + update_id, 1)]))
    assert not book.load(snapshot(5))  # the oldest kept is 8: 6 and 7 are gone
    assert book.load(snapshot(7, bids=[(9_007, 1)]))
    assert book.top().bid == (9_010, 1)


def test_top_equals_a_naive_book_over_random_diffs():
    rng = random.Random(7)
    book = BookTracker(MARKET)
    reference: dict[str, dict[int, int]] = {"bids": {}, "asks": {}}
    book.load(snapshot(0))
    for update_id in range(1, 3_000):
        changes: dict[str, list[tuple[int, int]]] = {"bids": [], "asks": []}
        for _ in range(rng.randint(1, 4)):
            side = rng.choice(["bids", "asks"])
            # bids below 10_000, asks above: the book is never crossed, like the engine's
            price = rng.randint(9_950, 9_999) if side == "bids" else rng.randint(10_001, 10_050)
            lots = rng.choice([0, 0, rng.randint(1, 500)])
            changes[side].append((price, lots))
            if lots:
                reference[side][price] = lots
            else:
                reference[side].pop(price, None)
        assert book.apply(diff(update_id, update_id, **changes)) is Applied.APPLIED
        bids, asks = reference["bids"], reference["asks"]
        best_bid = max(bids) if bids else None
        best_ask = min(asks) if asks else None
        assert book.top() == Top(
            None if best_bid is None else (best_bid, bids[best_bid]),
            None if best_ask is None else (best_ask, asks[best_ask]),
        )


# --- the glue: BookTickers over a fake hub -------------------------------------------------------


class FakeHub:
    """The part of the hub's interface BookTickers uses: wants, subscribers, request_depth
    and publish."""

    def __init__(self) -> None:
        self.topics: dict[str, set[Any]] = {}
        self.snapshot_waiters: list[Any] = []

    def wants(self, topic: str) -> bool:
        return topic in self.topics

    def subscribers(self, topic: str) -> set[Any]:
        return self.topics.get(topic, set())

    def request_depth(self, market: str, waiter: Any) -> None:
        self.snapshot_waiters.append(waiter)

    def publish(self, topic: str, frames: tuple[Any, ...]) -> None:
        for client in self.topics.get(topic, ()):
            client.deliver(frames)

    def answer_snapshots(self, depth: Depth) -> None:
        waiters, self.snapshot_waiters = self.snapshot_waiters, []
        for waiter in waiters:
            waiter.take_depth(depth)


class FakeClient:
    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    def deliver(self, frames: tuple[Any, ...]) -> None:
        for frame in frames:
            payload = frame.data[frame.data.index(b"{") :]  # past the WebSocket header
            self.frames.append(orjson.loads(payload))


def subscribe(hub: FakeHub, tickers: BookTickers, client: FakeClient) -> None:
    hub.topics.setdefault(hub_topic("TATA_INR"), set()).add(client)
    tickers.joined(hub, client, "TATA_INR")


def test_subscribers_get_the_top_once_synced_and_then_only_its_changes():
    hub, tickers = FakeHub(), BookTickers(CONFIG)
    alice = FakeClient()
    subscribe(hub, tickers, alice)
    assert len(hub.snapshot_waiters) == 1 and alice.frames == []
    tickers.market_events(hub, "TATA_INR", [diff(11, 11, bids=[(9_900, 100)])])  # kept
    hub.answer_snapshots(snapshot(10, bids=[(9_800, 5)], asks=[(10_100, 7)], ts=1_234))
    assert alice.frames == [
        {
            "stream": "bookTicker.TATA_INR",
            "data": {
                "e": "bookTicker",
                "E": 1_234_000,
                "s": "TATA_INR",
                "a": "101",
                "A": "0.07",
                "b": "99",
                "B": "1",
                "u": 11,
                "T": 1_234_000,
            },
        }
    ]
    events = [
        diff(12, 12, bids=[(9_700, 3)], ts=2_000),  # below the top: nothing
        {"type": "trade"},
        diff(13, 13, asks=[(10_100, 9)], ts=3_000),  # the best ask's size: a frame
    ]
    tickers.market_events(hub, "TATA_INR", events)
    assert [(f["data"]["u"], f["data"]["A"], f["data"]["E"]) for f in alice.frames[1:]] == [
        (13, "0.09", 3_000_000)
    ]
    bob = FakeClient()
    subscribe(hub, tickers, bob)  # synced: the current top at once, no engine query
    assert hub.snapshot_waiters == []
    assert bob.frames == alice.frames[-1:]


def test_a_gap_resyncs_and_the_last_subscriber_leaving_stops_tracking():
    hub, tickers = FakeHub(), BookTickers(CONFIG)
    alice = FakeClient()
    subscribe(hub, tickers, alice)
    hub.answer_snapshots(snapshot(10, bids=[(9_800, 5)]))
    assert alice.frames[-1]["data"]["a"] is None
    tickers.market_events(hub, "TATA_INR", [diff(12, 12, bids=[(9_800, 0)])])  # 11 lost
    assert len(hub.snapshot_waiters) == 1 and len(alice.frames) == 1
    hub.answer_snapshots(snapshot(12, bids=[(9_800, 5)]))  # the same top: nothing new
    assert len(alice.frames) == 1
    tickers.market_events(hub, "TATA_INR", [diff(13, 13, bids=[(9_800, 0)])])
    assert alice.frames[-1]["data"]["b"] is None and alice.frames[-1]["data"]["u"] == 13
    hub.topics.clear()
    tickers.left(hub, alice, "TATA_INR")
    assert tickers.markets == {}
    tickers.market_events(hub, "TATA_INR", [diff(14, 14, bids=[(9_800, 1)])])  # ignored
