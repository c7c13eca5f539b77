"""Self-trade prevention, cancelling one order or all, and how long closed orders are kept."""

from __future__ import annotations

import pytest
from engine_harness import Harness, trades_of

from exchange.errors import ErrorCode
from exchange.models import (
    Balance,
    CancelAll,
    CancelOrder,
    GetOpenOrders,
    GetOrder,
    OrderStatus,
    OrderUpdated,
    Rejection,
    Side,
)
from exchange.models import (
    SelfTradePrevention as STP,
)

RICH = {"TATA": 10_000, "INR": 10_000_000}


@pytest.fixture
def h() -> Harness:
    h = Harness()
    for user in ("alice", "bob", "carol"):
        h.fund(user, **RICH)
    return h


def statuses(outcome) -> dict[int, OrderStatus]:
    return {e.order.order_id: e.order.status for e in outcome.events if isinstance(e, OrderUpdated)}


# --- self-trade prevention ----------------------------------------------------------------------


def test_cancel_taker_expires_the_incoming_order(h: Harness) -> None:
    maker = h.sell("alice", 100, 5).reply.order_id
    out = h.buy("alice", 100, 5, self_trade_prevention=STP.CANCEL_TAKER)
    assert trades_of(out) == []
    assert statuses(out) == {out.reply.order_id: OrderStatus.EXPIRED}
    assert h.order("alice", maker).status is OrderStatus.NEW
    assert h.balance("alice", "INR") == Balance(10_000_000, 0)
    assert h.book()[:2] == ((), ((100, 5),))


def test_cancel_maker_expires_the_resting_order_and_the_taker_goes_on(h: Harness) -> None:
    maker = h.sell("alice", 100, 5).reply.order_id
    out = h.buy("alice", 100, 5, self_trade_prevention=STP.CANCEL_MAKER)
    assert trades_of(out) == []
    assert statuses(out) == {maker: OrderStatus.EXPIRED, out.reply.order_id: OrderStatus.NEW}
    assert h.balance("alice", "TATA") == Balance(10_000, 0)
    assert h.book()[:2] == (((100, 5),), ())


def test_cancel_both_expires_both(h: Harness) -> None:
    maker = h.sell("alice", 100, 5).reply.order_id
    out = h.buy("alice", 100, 5, self_trade_prevention=STP.CANCEL_BOTH)
    assert statuses(out) == {maker: OrderStatus.EXPIRED, out.reply.order_id: OrderStatus.EXPIRED}
    assert h.ledger_copy()[("alice", "TATA")] == (10_000, 0)
    assert h.ledger_copy()[("alice", "INR")] == (10_000_000, 0)
    assert h.book()[:2] == ((), ())


def test_cancel_taker_after_trading_with_others_expires_the_rest(h: Harness) -> None:
    h.sell("bob", 100, 2)
    h.sell("alice", 100, 5)
    h.sell("carol", 100, 5)
    reply = h.buy("alice", 100, 6).reply
    assert (reply.status, reply.executed_quantity) == (OrderStatus.EXPIRED, 2)
    assert h.balance("alice", "INR") == Balance(10_000_000 - 200, 0)


def test_cancel_maker_skips_own_orders_and_trades_the_next(h: Harness) -> None:
    own = h.sell("alice", 100, 5).reply.order_id
    other = h.sell("carol", 100, 3).reply.order_id
    out = h.buy("alice", 100, 3, self_trade_prevention=STP.CANCEL_MAKER)
    assert trades_of(out) == [(100, 3)]
    assert statuses(out) == {
        own: OrderStatus.EXPIRED,
        other: OrderStatus.FILLED,
        out.reply.order_id: OrderStatus.FILLED,
    }


def test_nobody_trades_with_himself_on_the_sell_side_either(h: Harness) -> None:
    h.buy("bob", 100, 5)
    out = h.market_order("bob", Side.SELL, quantity=5)
    assert out.reply.status is OrderStatus.EXPIRED and trades_of(out) == []


# --- cancel -------------------------------------------------------------------------------------


def test_cancel_by_id_unlocks_and_removes_the_level(h: Harness) -> None:
    order = h.buy("alice", 100, 5).reply
    out = h(CancelOrder("alice", "TATA_INR", order_id=order.order_id))
    assert out.reply.status is OrderStatus.CANCELLED
    assert out.reply.order_id == order.order_id
    assert h.balance("alice", "INR") == Balance(10_000_000, 0)
    assert h.book()[:2] == ((), ())


def test_cancel_by_client_id(h: Harness) -> None:
    h.buy("alice", 100, 5, client_order_id="c-1")
    out = h(CancelOrder("alice", "TATA_INR", client_order_id="c-1"))
    assert (out.reply.status, out.reply.client_order_id) == (OrderStatus.CANCELLED, "c-1")


def test_cancel_of_a_partially_filled_order_keeps_its_fills(h: Harness) -> None:
    order_id = h.buy("alice", 100, 5).reply.order_id
    h.sell("bob", 100, 2)
    reply = h(CancelOrder("alice", "TATA_INR", order_id=order_id)).reply
    assert (reply.status, reply.executed_quantity, len(reply.fills)) == (
        OrderStatus.CANCELLED,
        2,
        1,
    )
    assert h.balance("alice", "INR") == Balance(10_000_000 - 200, 0)


def test_cancel_of_a_filled_order_is_order_not_found(h: Harness) -> None:
    order_id = h.buy("alice", 100, 5).reply.order_id
    h.sell("bob", 100, 5)
    out = h(CancelOrder("alice", "TATA_INR", order_id=order_id))
    assert out.reply.code is ErrorCode.ORDER_NOT_FOUND


@pytest.mark.parametrize(
    "cancel",
    [
        CancelOrder("bob", "TATA_INR", order_id=1),  # someone else's
        CancelOrder("bob", "TATA_INR", client_order_id="c-1"),  # someone else's client id
        CancelOrder("alice", "BTC_USDT", order_id=1),  # another market
        CancelOrder("alice", "NOPE_INR", order_id=1),
        CancelOrder("alice", "TATA_INR", order_id=99),
        CancelOrder("alice", "TATA_INR", client_order_id="nope"),
        CancelOrder("alice", "TATA_INR"),
    ],
)
def test_cancel_of_what_is_not_ones_open_order_is_order_not_found(h: Harness, cancel) -> None:
    assert h.buy("alice", 100, 5, client_order_id="c-1").reply.order_id == 1
    out = h(cancel)  # the harness checks that nothing changed
    assert out.reply.code is ErrorCode.ORDER_NOT_FOUND
    assert h.order("alice", 1).status is OrderStatus.NEW


def test_cancel_twice(h: Harness) -> None:
    h.buy("alice", 100, 5)
    h(CancelOrder("alice", "TATA_INR", order_id=1))
    assert h(CancelOrder("alice", "TATA_INR", order_id=1)).reply.code is ErrorCode.ORDER_NOT_FOUND


# --- cancel all ---------------------------------------------------------------------------------


def test_cancel_all_in_one_market(h: Harness) -> None:
    h.fund("alice", USDT=10**12)
    a = h.buy("alice", 100, 5).reply.order_id
    b = h.sell("alice", 110, 5).reply.order_id
    c = h.buy("alice", 3_000_000, 1, symbol="BTC_USDT").reply.order_id
    h.buy("bob", 100, 5)
    out = h(CancelAll("alice", "TATA_INR"))
    assert [(o.order_id, o.status) for o in out.reply] == [
        (a, OrderStatus.CANCELLED),
        (b, OrderStatus.CANCELLED),
    ]
    assert [o.order_id for o in h.engine.query(GetOpenOrders("alice"))] == [c]
    assert h.book()[:2] == (((100, 5),), ())


def test_cancel_all_markets(h: Harness) -> None:
    h.fund("alice", USDT=10**12)
    h.buy("alice", 100, 5)
    h.buy("alice", 3_000_000, 1, symbol="BTC_USDT")
    out = h(CancelAll("alice"))
    assert len(out.reply) == 2
    assert [e.market for e in out.events if type(e).__name__ == "DepthChanged"] == [
        "BTC_USDT",
        "TATA_INR",
    ]
    assert h.engine.query(GetOpenOrders("alice")) == []
    assert h.balance("alice", "USDT") == Balance(10**12, 0)


def test_cancel_all_with_nothing_open_is_an_empty_list(h: Harness) -> None:
    out = h(CancelAll("alice"))
    assert (out.reply, out.events) == ([], [])


def test_cancel_all_of_an_unknown_market(h: Harness) -> None:
    assert h(CancelAll("alice", "NOPE_INR")).reply.code is ErrorCode.INVALID_MARKET


# --- retention of closed orders -----------------------------------------------------------------


def test_closed_orders_are_kept_up_to_the_retention_then_forgotten() -> None:
    h = Harness(closed_order_retention=2)
    h.fund("alice", **RICH)
    first = h.buy("alice", 100, 1, client_order_id="one").reply.order_id
    h(CancelOrder("alice", "TATA_INR", order_id=first))
    open_one = h.buy("alice", 90, 1).reply.order_id  # open orders are never forgotten
    for price in (91, 92):
        h(CancelOrder("alice", "TATA_INR", order_id=h.buy("alice", price, 1).reply.order_id))
    # Three closed, retention two: the first is gone, with its client id.
    assert isinstance(h.engine.query(GetOrder("alice", first)), Rejection)
    assert isinstance(h.engine.query(GetOrder("alice", client_order_id="one")), Rejection)
    assert h.order("alice", open_one).status is OrderStatus.NEW
    assert h.order("alice", first + 3).status is OrderStatus.CANCELLED
    again = h.buy("alice", 100, 1, client_order_id="one").reply
    assert again.order_id > first and again.status is OrderStatus.NEW


def test_get_order_by_client_id_and_not_someone_elses(h: Harness) -> None:
    order_id = h.buy("alice", 100, 5, client_order_id="x").reply.order_id
    assert h.engine.query(GetOrder("alice", client_order_id="x")).order_id == order_id
    assert h.engine.query(GetOrder("bob", order_id)).code is ErrorCode.ORDER_NOT_FOUND
    assert h.engine.query(GetOrder("bob", client_order_id="x")).code is ErrorCode.ORDER_NOT_FOUND
