"""Snapshots: state → bytes → state, with equal hashes, equal futures and clear refusals."""

from __future__ import annotations

import zlib
from pathlib import Path

import orjson
import pytest
from engine_harness import CONFIG, Harness

from exchange import codec
from exchange.engine import snapshot
from exchange.engine.snapshot import SnapshotError
from exchange.markets import parse_config
from exchange.models import (
    CancelOrder,
    GetBalances,
    GetDepth,
    GetOpenOrders,
    GetOrder,
    OrderStatus,
    OrderType,
    PlaceOrder,
    Side,
    TimeInForce,
)


def busy_harness() -> Harness:
    """An engine with resting, partially filled, closed and client-id'd orders in 3 markets, and
    stop orders waiting on both sides of TATA_INR's last trade price (101)."""
    h = Harness(closed_order_retention=5)
    for user in ("alice", "bob"):
        h.fund(user, TATA=10_000, INR=10**7, BTC=10**9, USDT=10**13, ETH=10**9)
    h.sell("bob", 101, 3, client_order_id="b-1")
    h.sell("bob", 102, 4)
    h.buy("alice", 101, 5)  # fills 3, rests 2
    h.buy("alice", 99, 1, client_order_id="a-1")
    h(CancelOrder("alice", "TATA_INR", client_order_id="a-1"))
    h.buy("alice", 3_000_000, 7, symbol="BTC_USDT")
    h.sell("bob", 3_000_001, 2, symbol="BTC_USDT", client_order_id="b-2")
    h.sell("alice", 5_000, 10, symbol="ETH_BTC")
    h.buy("bob", 5_000, 4, symbol="ETH_BTC")  # fees go to the fee account
    h(PlaceOrder("bob", "TATA_INR", Side.BUY, OrderType.MARKET, quote_quantity=150))
    h.sell("alice", 90, 1, trigger_price=100)
    h.buy("bob", 200, 1, trigger_price=105, client_order_id="b-stop")
    h(PlaceOrder("alice", "TATA_INR", Side.BUY, OrderType.MARKET, quantity=1, trigger_price=103))
    h.sell("bob", 120, 1, trigger_price=104)
    return h


MORE = [
    PlaceOrder("bob", "TATA_INR", Side.SELL, price=100, quantity=6),
    PlaceOrder("alice", "TATA_INR", Side.BUY, price=100, quantity=2),  # triggers the sell stop
    CancelOrder("bob", "TATA_INR", client_order_id="b-stop"),
    PlaceOrder("alice", "BTC_USDT", Side.BUY, price=3_000_001, quantity=1),
    CancelOrder("bob", "BTC_USDT", client_order_id="b-2"),
    PlaceOrder("alice", "TATA_INR", Side.BUY, price=99, quantity=1, client_order_id="a-1"),
    PlaceOrder("bob", "TATA_INR", Side.SELL, price=101, quantity=1, client_order_id="b-1"),
    PlaceOrder("bob", "ETH_BTC", Side.BUY, price=5_001, quantity=6, time_in_force=TimeInForce.IOC),
]


def test_round_trip_keeps_the_whole_state() -> None:
    h = busy_harness()
    data = snapshot.dumps(h.engine)
    restored = snapshot.loads(data, CONFIG)
    assert snapshot.state_hash(restored) == snapshot.state_hash(h.engine)
    assert snapshot.dumps(restored) == data
    for user in ("alice", "bob", "exchange:fees"):
        assert restored.query(GetBalances(user)) == h.engine.query(GetBalances(user))
        assert restored.query(GetOpenOrders(user)) == h.engine.query(GetOpenOrders(user))
    for symbol in CONFIG.markets:
        assert restored.query(GetDepth(symbol)) == h.engine.query(GetDepth(symbol))
    for order_id in range(1, h.engine.next_order_id):
        for user in ("alice", "bob"):
            assert restored.query(GetOrder(user, order_id)) == h.engine.query(
                GetOrder(user, order_id)
            )
    assert restored.query(GetOrder("bob", client_order_id="b-1")).client_order_id == "b-1"


def test_restore_then_continue_equals_running_straight_through() -> None:
    h = busy_harness()
    restored = snapshot.loads(snapshot.dumps(h.engine), CONFIG)
    for offset, command in enumerate(MORE, 1):
        seq, ts = h.seq + offset, h.ts + offset
        straight = h.engine.apply(command, seq=seq, ts=ts)
        resumed = restored.apply(command, seq=seq, ts=ts)
        assert [codec.encode(e) for e in resumed.events] == [
            codec.encode(e) for e in straight.events
        ]
        assert codec.encode(resumed.reply) == codec.encode(straight.reply)
    assert snapshot.state_hash(restored) == snapshot.state_hash(h.engine)
    open_stops = [
        (o.trigger_price, o.status, o.triggered_at)
        for user in ("alice", "bob")
        for o in restored.query(GetOpenOrders(user))
        if o.trigger_price is not None
    ]
    assert sorted(open_stops) == [
        (100, OrderStatus.NEW, h.ts + 2),  # triggered after the restore, rests at 90
        (103, OrderStatus.TRIGGER_PENDING, None),
        (104, OrderStatus.TRIGGER_PENDING, None),
    ]


def test_a_version_1_snapshot_loads_as_the_same_history_run_today() -> None:
    """Format 1 (before stop orders): no stops, and the last trade price read from the fills."""
    old = (Path(__file__).parent / "snapshot_v1.json").read_bytes()
    assert orjson.loads(old)["version"] == 1
    loaded = snapshot.loads(zlib.compress(old), CONFIG)
    h = Harness()  # the history that wrote snapshot_v1.json
    for user in ("alice", "bob"):
        h.fund(user, TATA=10_000, INR=10**7)
    h.sell("bob", 101, 3, client_order_id="b-1")
    h.sell("bob", 103, 4)
    h.buy("alice", 101, 5)
    h.buy("alice", 99, 1, client_order_id="a-1")
    h(CancelOrder("alice", "TATA_INR", client_order_id="a-1"))
    # Format 1 knows no last movement (format 3 added it): it loads as 0, the ledger's start.
    assert loaded.moved_seq == 0
    loaded.moved_seq = h.engine.moved_seq
    assert snapshot.state_hash(loaded) == snapshot.state_hash(h.engine)
    assert loaded.stops["TATA_INR"].last_price == 101
    assert loaded.stops["BTC_USDT"].last_price is None
    stop = PlaceOrder("bob", "TATA_INR", Side.SELL, price=90, quantity=1, trigger_price=100)
    assert loaded.apply(stop, seq=h.seq + 1, ts=h.ts + 1).reply.status is (
        OrderStatus.TRIGGER_PENDING
    )


def test_equal_histories_give_equal_hashes_and_different_ones_do_not() -> None:
    a, b = busy_harness(), busy_harness()
    assert snapshot.state_hash(a.engine) == snapshot.state_hash(b.engine)
    b.buy("alice", 50, 1)
    assert snapshot.state_hash(a.engine) != snapshot.state_hash(b.engine)


def _state() -> dict:
    return snapshot.to_state(busy_harness().engine)


def _pack(value) -> bytes:
    return zlib.compress(orjson.dumps(value))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a snapshot",
        zlib.compress(b"{not json"),
        _pack([1, 2, 3]),
        _pack(None),
        _pack({"format": "something-else", "version": 1}),
        _pack({**_state(), "version": 99}),
        _pack({"format": snapshot.FORMAT, "version": snapshot.VERSION}),
        _pack({**_state(), "orders": [[1, 2, 3]]}),
        _pack({**_state(), "order_fields": ["order_id"]}),
    ],
    ids=[
        "empty",
        "garbage",
        "bad json",
        "a list",
        "null",
        "other format",
        "other version",
        "missing keys",
        "short order row",
        "wrong fields",
    ],
)
def test_bad_snapshots_raise_snapshot_error(data: bytes) -> None:
    with pytest.raises(SnapshotError):
        snapshot.loads(data, CONFIG)


def test_a_snapshot_with_an_unconfigured_market_is_refused() -> None:
    data = snapshot.dumps(busy_harness().engine)
    only_tata = parse_config(
        {
            "assets": {"TATA": 2, "INR": 4},
            "markets": [
                {
                    "symbol": "TATA_INR",
                    "base": "TATA",
                    "quote": "INR",
                    "tick_size": "0.01",
                    "lot_size": "0.01",
                    "min_quantity": "0.01",
                    "max_price": "1000000",
                    "max_quantity": "1000000",
                }
            ],
        }
    )
    with pytest.raises(SnapshotError, match="not configured"):
        snapshot.loads(data, only_tata)
