"""Deposits and withdrawals, and the events each command emits (trades, orders, balances, depth)."""

from __future__ import annotations

import pytest
from engine_harness import Harness, depth_events

from exchange.errors import ErrorCode
from exchange.models import (
    Balance,
    BalanceChanged,
    CancelOrder,
    Deposit,
    DepthChanged,
    FundsTransferred,
    GetBalances,
    GetDepth,
    OrderStatus,
    OrderUpdated,
    Side,
    TradeExecuted,
    Transferred,
    Withdraw,
)
from exchange.models import (
    SelfTradePrevention as STP,
)

# --- deposits and withdrawals -------------------------------------------------------------------


def test_deposit_replies_every_asset_and_emits_the_change() -> None:
    h = Harness()
    out = h(Deposit("alice", "INR", 1_234))
    seq = h.engine.seq
    balances = {a: Balance(1_234 if a == "INR" else 0, 0) for a in h.config.assets}
    assert out.reply == Transferred(seq, balances)  # the transfer id is the command's seq
    assert out.events == [
        FundsTransferred(seq, "alice", "INR", 1_234, h.engine.now),
        BalanceChanged("alice", "INR", 1_234, 0),
    ]
    assert h.engine.query(GetBalances("nobody")) == {a: Balance(0, 0) for a in h.config.assets}


def test_withdraw_takes_from_available_only() -> None:
    h = Harness()
    h.fund("alice", INR=1_000)
    h.buy("alice", 100, 6)  # locks 600
    assert h(Withdraw("alice", "INR", 401)).reply.code is ErrorCode.INSUFFICIENT_FUNDS
    out = h(Withdraw("alice", "INR", 400))
    assert out.reply.balances["INR"] == Balance(0, 600)
    assert out.reply.transfer_id == h.engine.seq
    assert out.events == [
        FundsTransferred(h.engine.seq, "alice", "INR", -400, h.engine.now),
        BalanceChanged("alice", "INR", 0, 600),
    ]


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (Deposit("alice", "DOGE", 5), ErrorCode.INVALID_ASSET),
        (Deposit("alice", "INR", 0), ErrorCode.INVALID_AMOUNT),
        (Deposit("alice", "INR", -5), ErrorCode.INVALID_AMOUNT),
        (Withdraw("alice", "DOGE", 5), ErrorCode.INVALID_ASSET),
        (Withdraw("alice", "INR", 0), ErrorCode.INVALID_AMOUNT),
        (Withdraw("alice", "INR", -1), ErrorCode.INVALID_AMOUNT),
        (Withdraw("alice", "INR", 1_001), ErrorCode.INSUFFICIENT_FUNDS),
        (Withdraw("nobody", "INR", 1), ErrorCode.INSUFFICIENT_FUNDS),
    ],
)
def test_refused_transfers_change_nothing(command, code) -> None:
    h = Harness()
    h.fund("alice", INR=1_000)
    out = h(command)  # the harness checks that no balance moved
    assert out.reply.code is code


# --- events -------------------------------------------------------------------------------------


def test_a_crossing_order_reports_trades_orders_balances_and_depth() -> None:
    h = Harness()
    for user in ("alice", "bob", "carol"):
        h.fund(user, TATA=1_000, INR=1_000_000)
    h.sell("bob", 101, 2)
    h.sell("carol", 102, 3)
    out = h.buy("alice", 103, 4)
    kinds = [type(e).__name__ for e in out.events]
    assert kinds == ["TradeExecuted"] * 2 + ["OrderUpdated"] * 3 + ["BalanceChanged"] * 6 + [
        "DepthChanged"
    ]
    t1, t2 = out.events[:2]
    assert t1 == TradeExecuted(1, "TATA_INR", 101, 2, 202, Side.BUY, 3, 1, "alice", "bob", h.ts)
    assert (t2.trade_id, t2.price, t2.quantity, t2.seller_id) == (2, 102, 2, "carol")
    assert not t1.is_buyer_maker
    orders = {e.order.order_id: (e.order.status, e.order.fills) for e in out.events[2:5]}
    assert orders == {
        1: (OrderStatus.FILLED, ()),
        2: (OrderStatus.PARTIALLY_FILLED, ()),
        # makers' events carry no fills; the taker's event is its reply, with this command's fills
        3: (OrderStatus.FILLED, out.reply.fills),
    }
    assert out.events[4].order is out.reply
    balances = {(e.user_id, e.asset): (e.available, e.locked) for e in out.events[5:11]}
    assert balances == {
        ("alice", "INR"): (1_000_000 - 202 - 204, 0),
        ("alice", "TATA"): (1_000 + 4, 0),
        ("bob", "INR"): (1_000_000 + 202, 0),
        ("bob", "TATA"): (1_000 - 2, 0),
        ("carol", "INR"): (1_000_000 + 204, 0),
        ("carol", "TATA"): (1_000 - 3, 1),
    }
    (depth,) = depth_events(out)
    assert depth == DepthChanged("TATA_INR", 3, 4, (), ((101, 0), (102, 1)), h.ts)


def test_depth_update_ids_chain_and_match_get_depth() -> None:
    h = Harness()
    h.fund("alice", TATA=1_000, INR=1_000_000)
    h.fund("bob", TATA=1_000, INR=1_000_000)
    ids = []
    for command_out in (
        h.buy("alice", 100, 1),  # 1 level
        h.buy("alice", 100, 1),  # same level again
        h.sell("alice", 105, 1),
        h.buy("alice", 99, 1),
        h.sell("bob", 99, 3),  # takes 100 (2 lots) and 99 (1 lot): two levels
        h(CancelOrder("alice", "TATA_INR", order_id=3)),
    ):
        (event,) = depth_events(command_out)
        ids.append((event.first_update_id, event.last_update_id))
    assert ids == [(1, 1), (2, 2), (3, 3), (4, 4), (5, 6), (7, 7)]
    depth = h.engine.query(GetDepth("TATA_INR"))
    assert depth.last_update_id == 7 and (depth.bids, depth.asks) == ((), ())
    assert h.engine.query(GetDepth("BTC_USDT")).last_update_id == 0  # one sequence per market


def test_depth_limit_returns_the_best_levels() -> None:
    h = Harness()
    h.fund("alice", INR=1_000_000)
    for price in (95, 99, 97, 98):
        h.buy("alice", price, 1)
    depth = h.engine.query(GetDepth("TATA_INR", limit=2))
    assert depth.bids == ((99, 1), (98, 1))
    assert depth.last_update_id == 4


def test_a_rejected_command_emits_nothing() -> None:
    h = Harness()
    assert h.buy("nobody", 100, 1).events == []
    assert h(CancelOrder("nobody", "TATA_INR", order_id=1)).events == []


def test_order_events_cover_stp_expired_makers() -> None:
    h = Harness()
    h.fund("alice", TATA=1_000, INR=1_000_000)
    h.sell("alice", 100, 1)
    out = h.buy("alice", 100, 1, self_trade_prevention=STP.CANCEL_BOTH)
    updates = [
        (e.order.order_id, e.order.status) for e in out.events if isinstance(e, OrderUpdated)
    ]
    assert updates == [(1, OrderStatus.EXPIRED), (2, OrderStatus.EXPIRED)]
    assert [e for e in out.events if isinstance(e, DepthChanged)][0].asks == ((100, 0),)
