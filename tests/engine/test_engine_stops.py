"""Stop orders in the engine core: the contract's "Stop orders (v1.4)".

``TATA_INR`` as in the other engine tests: ``q`` lots at ``p`` ticks cost ``p * q`` INR minor
units and move ``q`` TATA minor units. :func:`last_trade` makes the market's last trade price what
a test needs, between two bystanders, so that stop orders can be placed around it.
"""

from __future__ import annotations

import pytest
from engine_harness import Harness, depth_events, trades_of

from exchange import codec
from exchange.errors import ErrorCode
from exchange.models import (
    Balance,
    BalanceChanged,
    CancelAll,
    CancelOrder,
    GetOpenOrders,
    OrderStatus,
    OrderType,
    OrderUpdated,
    OrderView,
    Outcome,
    PlaceOrder,
    SelfTradePrevention,
    Side,
    TimeInForce,
    TradeExecuted,
    Withdraw,
)

BUY, SELL, MARKET = Side.BUY, Side.SELL, OrderType.MARKET
PENDING, NEW, FILLED = OrderStatus.TRIGGER_PENDING, OrderStatus.NEW, OrderStatus.FILLED
RICH = {"TATA": 10_000, "INR": 10_000_000}


@pytest.fixture
def h() -> Harness:
    h = Harness()
    for user in ("alice", "bob", "carol", "dave", "x", "y"):
        h.fund(user, **RICH)
    return h


def last_trade(h: Harness, price: int, symbol: str = "TATA_INR") -> Outcome:
    """The smallest quantity trades at ``price`` between x (resting sell) and y (taking buy)."""
    quantity = h.market(symbol).min_lots
    h.sell("x", price, quantity, symbol=symbol)
    out = h.buy("y", price, quantity, symbol=symbol)
    assert trades_of(out)[0] == (price, quantity)
    return out


def order_events(out: Outcome) -> list[tuple[int, OrderStatus]]:
    return [(e.order.order_id, e.order.status) for e in out.events if type(e) is OrderUpdated]


def stop_views(out: Outcome, order_id: int) -> list[OrderView]:
    return [e.order for e in out.events if type(e) is OrderUpdated and e.order.order_id == order_id]


# --- each direction, limit and market -----------------------------------------------------------


def test_stop_loss_market_sell_waits_then_sells_when_a_trade_prints_at_its_trigger(h) -> None:
    last_trade(h, 100)
    placed = h.market_order("alice", SELL, quantity=5, trigger_price=95)
    stop = placed.reply
    assert (stop.status, stop.trigger_price, stop.triggered_at) == (PENDING, 95, None)
    assert h.balance("alice", "TATA") == Balance(10_000 - 5, 5)  # locked at placement
    assert h.book()[:2] == ((), ()) and depth_events(placed) == []
    assert [type(e) for e in placed.events] == [OrderUpdated, BalanceChanged]
    assert placed.events[0].order == stop
    h.buy("carol", 96, 1)
    h.buy("dave", 95, 1)
    h.buy("dave", 94, 10)
    assert h.market_order("bob", SELL, quantity=1).reply.status is FILLED  # prints at 96: above
    assert h.order("alice", stop.order_id).status is PENDING

    out = h.market_order("bob", SELL, quantity=1)  # prints exactly at the trigger, 95
    assert trades_of(out) == [(95, 1), (94, 5)]
    after = h.order("alice", stop.order_id)
    assert (after.status, after.executed_quantity, after.triggered_at) == (FILLED, 5, h.ts)
    assert after.created_at == stop.created_at < after.triggered_at
    assert h.balance("alice", "TATA") == Balance(10_000 - 5, 0)
    assert h.balance("alice", "INR") == Balance(10_000_000 + 5 * 94, 0)
    # The taker's reply is the one that triggered; the stop's own events follow it.
    assert out.reply.status is FILLED and out.reply.order_id != stop.order_id
    assert [v.status for v in stop_views(out, stop.order_id)] == [NEW, FILLED]


def test_take_profit_limit_sell_rests_in_the_book_once_triggered(h) -> None:
    last_trade(h, 100)
    stop = h.sell("alice", 110, 5, trigger_price=108).reply
    assert stop.status is PENDING and h.book()[1] == ()
    assert h.balance("alice", "TATA") == Balance(10_000 - 5, 5)
    out = last_trade(h, 108)
    views = stop_views(out, stop.order_id)
    assert [(v.status, v.triggered_at) for v in views] == [(NEW, h.ts)]  # nothing else changed
    assert h.book()[1] == ((110, 5),)
    assert h.balance("alice", "TATA") == Balance(10_000 - 5, 5)
    assert h.buy("bob", 110, 5).reply.status is FILLED


def test_stop_market_buy_by_quote_amount_above_spends_its_locked_amount(h) -> None:
    last_trade(h, 100)
    stop = h.market_order("alice", BUY, quote_quantity=1000, trigger_price=105).reply
    assert h.balance("alice", "INR") == Balance(10_000_000 - 1000, 1000)
    h.sell("carol", 106, 20)
    assert h.order("alice", stop.order_id).status is PENDING  # a resting order is no trade
    out = last_trade(h, 105)
    assert trades_of(out) == [(105, 1), (106, 9)]  # 9 * 106 = 954; 46 cannot buy a tenth lot
    after = h.order("alice", stop.order_id)
    assert (after.status, after.executed_quantity, after.executed_quote_quantity) == (
        FILLED,
        9,
        954,
    )
    assert h.balance("alice", "INR") == Balance(10_000_000 - 954, 0)


def test_stop_limit_buy_below_trades_with_the_rest_of_the_order_that_triggered_it(h) -> None:
    last_trade(h, 100)
    stop = h.buy("alice", 92, 3, trigger_price=93).reply
    assert h.balance("alice", "INR") == Balance(10_000_000 - 276, 276)
    h.buy("dave", 93, 1)
    out = h.sell("bob", 92, 5)  # takes dave's 93, rests 4 at 92: the stop buys 3 of them
    assert trades_of(out) == [(93, 1), (92, 3)]
    assert out.reply.status is OrderStatus.PARTIALLY_FILLED
    assert h.order("alice", stop.order_id).status is FILLED
    assert h.book()[:2] == ((), ((92, 1),))
    assert h.balance("alice", "INR") == Balance(10_000_000 - 276, 0)


def test_stop_buy_above_and_stop_sell_above_are_both_rising(h) -> None:
    """The direction is the trigger's side of the last price, not the order's side."""
    last_trade(h, 100)
    buy = h.buy("alice", 50, 1, trigger_price=101).reply.order_id
    sell = h.sell("bob", 200, 1, trigger_price=102).reply.order_id
    below = h.buy("carol", 50, 1, trigger_price=99).reply.order_id
    out = last_trade(h, 102)
    assert [oid for oid, status in order_events(out) if status is NEW] == [buy, sell]
    assert h.order("carol", below).status is PENDING


# --- the order of triggering --------------------------------------------------------------------


def test_one_trade_falling_triggers_highest_first_then_oldest_first(h) -> None:
    last_trade(h, 100)
    a = h.sell("alice", 200, 1, trigger_price=98).reply.order_id
    b = h.sell("bob", 200, 1, trigger_price=99).reply.order_id
    c = h.sell("carol", 200, 1, trigger_price=98).reply.order_id
    d = h.sell("dave", 200, 1, trigger_price=97).reply.order_id
    e = h.sell("alice", 200, 1, trigger_price=96).reply.order_id
    h.buy("x", 97, 1)
    out = h.market_order("y", SELL, quantity=1)  # one trade, from 100 straight to 97
    assert trades_of(out) == [(97, 1)]
    assert [oid for oid, status in order_events(out) if status is NEW] == [b, a, c, d]
    assert h.order("alice", e).status is PENDING


def test_one_trade_rising_triggers_lowest_first_then_oldest_first(h) -> None:
    last_trade(h, 100)
    a = h.buy("alice", 50, 1, trigger_price=103).reply.order_id
    b = h.buy("bob", 50, 1, trigger_price=102).reply.order_id
    c = h.buy("carol", 50, 1, trigger_price=104).reply.order_id
    d = h.buy("dave", 50, 1, trigger_price=102).reply.order_id
    out = last_trade(h, 104)
    assert [oid for oid, status in order_events(out) if status is NEW] == [b, d, a, c]


def test_a_sweep_triggers_in_the_order_its_trades_reach_the_triggers(h) -> None:
    last_trade(h, 100)
    late = h.buy("alice", 50, 1, trigger_price=103).reply.order_id
    early = h.buy("bob", 50, 1, trigger_price=101).reply.order_id
    h.sell("x", 101, 1)
    h.sell("x", 103, 1)
    out = h.buy("y", 103, 2)
    assert trades_of(out) == [(101, 1), (103, 1)]
    assert [oid for oid, status in order_events(out) if status is NEW] == [early, late]


def test_a_cascade_runs_in_the_order_the_price_reached_the_triggers(h) -> None:
    last_trade(h, 100)
    h.buy("x", 99, 1)
    h.buy("x", 97, 1)
    h.buy("x", 95, 10)
    first = h.market_order("alice", SELL, quantity=1, trigger_price=99).reply.order_id
    second = h.market_order("bob", SELL, quantity=1, trigger_price=97).reply.order_id
    untouched = h.market_order("carol", SELL, quantity=1, trigger_price=94).reply.order_id
    out = h.market_order("y", SELL, quantity=1)
    assert trades_of(out) == [(99, 1), (97, 1), (95, 1)]  # each trade triggers the next stop
    trades = [e for e in out.events if type(e) is TradeExecuted]
    assert [t.seller_id for t in trades] == ["y", "alice", "bob"]
    assert [oid for oid, status in order_events(out) if status is NEW] == [first, second]
    for user, order_id in (("alice", first), ("bob", second)):
        order = h.order(user, order_id)
        assert (order.status, order.triggered_at) == (FILLED, h.ts)
    assert h.order("carol", untouched).status is PENDING
    # Balances and depth are reported once for the whole command, after every stop ran.
    kinds = [type(e).__name__ for e in out.events]
    assert kinds.index("BalanceChanged") > max(
        i for i, k in enumerate(kinds) if k == "OrderUpdated"
    )
    assert kinds[-1] == "DepthChanged" and kinds.count("DepthChanged") == 1


def test_a_level_a_stop_refills_is_no_depth_change(h) -> None:
    """A trade takes a level, a stop rests the same quantity there: the level did not change."""
    h.sell("x", 101, 5)
    last_trade(h, 100)
    h.sell("alice", 101, 2, trigger_price=101)
    before = h.book()
    out = h.buy("y", 101, 2)
    assert trades_of(out) == [(101, 2)]
    assert h.book() == before and depth_events(out) == []


def test_trades_in_one_market_trigger_nothing_in_another(h) -> None:
    h.fund("alice", BTC=10**9)
    for user in ("x", "y"):
        h.fund(user, BTC=10**9, USDT=10**13)
    last_trade(h, 3_000_000, "BTC_USDT")
    last_trade(h, 100)
    stop = h.sell("alice", 2_000_000, 1, symbol="BTC_USDT", trigger_price=2_999_999).reply
    last_trade(h, 90)
    assert h.order("alice", stop.order_id).status is PENDING


# --- funds --------------------------------------------------------------------------------------


def test_a_stop_s_locked_funds_cannot_be_spent_meanwhile(h) -> None:
    last_trade(h, 100)
    h.fund("carol", INR=1)  # 10_000_001
    h.buy("carol", 1_000, 10_000, trigger_price=101)  # locks 10_000_000
    assert h.balance("carol", "INR") == Balance(1, 10_000_000)
    assert h(Withdraw("carol", "INR", 2)).reply.code is ErrorCode.INSUFFICIENT_FUNDS
    assert h.buy("carol", 100, 1).reply.code is ErrorCode.INSUFFICIENT_FUNDS
    assert h.sell("carol", 200, 10_000, trigger_price=99).reply.status is PENDING
    assert h.sell("carol", 200, 1).reply.code is ErrorCode.INSUFFICIENT_FUNDS
    assert h.market_order("carol", BUY, quote_quantity=2, trigger_price=99).reply.code is (
        ErrorCode.INSUFFICIENT_FUNDS
    )


def test_a_stop_market_buy_by_quantity_locks_nothing_and_spends_what_is_left(h) -> None:
    last_trade(h, 100)
    h.fund("erin", INR=1_000)
    placed = h.market_order("erin", BUY, quantity=10, trigger_price=105)
    stop = placed.reply
    assert stop.status is PENDING and h.balance("erin", "INR") == Balance(1_000, 0)
    assert [type(e) for e in placed.events] == [OrderUpdated]
    h(Withdraw("erin", "INR", 750))  # the money is free to go: only 250 is left
    h.sell("x", 106, 20)
    out = last_trade(h, 105)
    assert trades_of(out) == [(105, 1), (106, 2)]  # 250 buys 2 lots at 106
    after = h.order("erin", stop.order_id)
    assert (after.status, after.executed_quantity) == (OrderStatus.EXPIRED, 2)
    assert h.balance("erin", "INR") == Balance(250 - 212, 0)


def test_a_stop_market_buy_that_finds_no_money_is_rejected_when_triggered(h) -> None:
    """What Backpack calls TriggerFailed: ``rejected`` with a trigger price and a trigger time."""
    last_trade(h, 100)
    stop = h.market_order("erin", BUY, quantity=10, trigger_price=105).reply  # erin has nothing
    assert stop.status is PENDING  # it locks nothing, so nothing is checked yet
    out = last_trade(h, 105)
    views = stop_views(out, stop.order_id)
    assert [(v.status, v.executed_quantity, v.triggered_at) for v in views] == [
        (OrderStatus.REJECTED, 0, h.ts)
    ]
    assert h.engine.query(GetOpenOrders("erin")) == []
    assert not any(type(e) is BalanceChanged and e.user_id == "erin" for e in out.events)


# --- cancel, client ids, self-trade prevention, fees --------------------------------------------


def test_cancel_of_a_waiting_stop_releases_its_funds_and_it_never_triggers(h) -> None:
    last_trade(h, 100)
    by_id = h.sell("alice", 90, 5, trigger_price=95).reply.order_id
    h.buy("alice", 90, 2, trigger_price=95, client_order_id="dip")
    out = h(CancelOrder("alice", "TATA_INR", order_id=by_id))
    assert out.reply.status is OrderStatus.CANCELLED and out.reply.trigger_price == 95
    assert depth_events(out) == []
    assert h.balance("alice", "TATA") == Balance(10_000, 0)
    again = h(CancelOrder("alice", "TATA_INR", client_order_id="dip")).reply
    assert (again.status, again.client_order_id) == (OrderStatus.CANCELLED, "dip")
    assert h.balance("alice", "INR") == Balance(10_000_000, 0)
    out = last_trade(h, 90)  # through the trigger: nothing of theirs moves
    assert all(oid not in (by_id, again.order_id) for oid, _ in order_events(out))
    assert h.order("alice", by_id).status is OrderStatus.CANCELLED


def test_cancel_all_takes_waiting_stops_and_resting_orders(h) -> None:
    last_trade(h, 100)
    resting = h.buy("alice", 90, 1).reply.order_id
    stop = h.buy("alice", 90, 1, trigger_price=95).reply.order_id
    out = h(CancelAll("alice", "TATA_INR"))
    assert [(o.order_id, o.status) for o in out.reply] == [
        (resting, OrderStatus.CANCELLED),
        (stop, OrderStatus.CANCELLED),
    ]
    assert len(depth_events(out)) == 1
    assert h.balance("alice", "INR") == Balance(10_000_000, 0)


def test_open_orders_list_waiting_stops_and_a_client_id_names_one(h) -> None:
    last_trade(h, 100)
    stop = h.sell("alice", 90, 5, trigger_price=95, client_order_id="sl").reply
    assert h.engine.query(GetOpenOrders("alice", "TATA_INR")) == [stop]
    repeat = h.sell("alice", 80, 1, client_order_id="sl").reply  # the same client id again
    assert repeat == stop
    assert h.engine.next_order_id == stop.order_id + 1


def test_a_triggered_stop_obeys_self_trade_prevention(h) -> None:
    last_trade(h, 100)
    own = h.buy("alice", 94, 3).reply.order_id
    stop = h.market_order(
        "alice",
        SELL,
        quantity=5,
        trigger_price=95,
        self_trade_prevention=SelfTradePrevention.CANCEL_MAKER,
    ).reply.order_id
    h.buy("bob", 95, 1)
    h.buy("bob", 93, 10)
    out = h.market_order("carol", SELL, quantity=1)
    assert trades_of(out) == [(95, 1), (93, 5)]  # alice's own bid at 94 is expired instead
    assert h.order("alice", own).status is OrderStatus.EXPIRED
    assert h.order("alice", stop).status is FILLED


def test_a_triggered_stop_pays_the_taker_fee(h) -> None:
    for user in ("alice", "x", "y", "bob"):
        h.fund(user, ETH=10**9, BTC=10**9)
    last_trade(h, 5_000, "ETH_BTC")
    h.buy("bob", 4_990, 1_000, symbol="ETH_BTC")
    h.market_order("alice", SELL, symbol="ETH_BTC", quantity=1_000, trigger_price=4_995)
    h.buy("x", 4_995, 2, symbol="ETH_BTC")
    before = h.balance("alice", "BTC").available
    out = h.market_order("y", SELL, symbol="ETH_BTC", quantity=2)
    m = h.market("ETH_BTC")
    proceeds = m.quote_units(4_990, 1_000)
    assert trades_of(out) == [(4_995, 2), (4_990, 1_000)]
    assert h.balance("alice", "BTC").available == before + proceeds - proceeds * 25 // 10_000


# --- refusals -----------------------------------------------------------------------------------


def test_no_trade_yet_means_no_trigger(h) -> None:
    out = h.sell("alice", 90, 1, trigger_price=95)
    assert out.reply.code is ErrorCode.INVALID_PRICE


@pytest.mark.parametrize(
    ("order", "code"),
    [
        (PlaceOrder("alice", "TATA_INR", SELL, price=90, quantity=1, trigger_price=100), "price"),
        (PlaceOrder("alice", "TATA_INR", SELL, price=90, quantity=1, trigger_price=0), "price"),
        (
            PlaceOrder("alice", "TATA_INR", SELL, price=90, quantity=1, trigger_price=10**8 + 1),
            "price",
        ),
        (
            PlaceOrder(
                "alice", "TATA_INR", BUY, price=90, quantity=1, post_only=True, trigger_price=99
            ),
            "order",
        ),
        (
            PlaceOrder(
                "alice",
                "TATA_INR",
                BUY,
                price=90,
                quantity=1,
                time_in_force=TimeInForce.FOK,
                trigger_price=99,
            ),
            "order",
        ),
        (
            PlaceOrder("alice", "TATA_INR", SELL, price=90, quantity=10**5, trigger_price=99),
            "funds",
        ),
        (PlaceOrder("alice", "TATA_INR", SELL, price=0, quantity=1, trigger_price=99), "price"),
    ],
    ids=["at the last price", "zero", "beyond the range", "post-only", "FOK", "funds", "bad price"],
)
def test_refusals(h, order: PlaceOrder, code: str) -> None:
    last_trade(h, 100)
    expected = {
        "price": ErrorCode.INVALID_PRICE,
        "order": ErrorCode.INVALID_ORDER,
        "funds": ErrorCode.INSUFFICIENT_FUNDS,
    }[code]
    assert h(order).reply.code is expected  # the harness checks that nothing changed


# --- the wire -----------------------------------------------------------------------------------


def test_records_encoded_before_stop_orders_still_decode() -> None:
    old_command = (
        b'{"record":"PlaceOrder","user_id":"u","market":"TATA_INR","side":"buy","type":"limit",'
        b'"price":100,"quantity":1,"quote_quantity":null,"time_in_force":"GTC",'
        b'"post_only":false,"client_order_id":null,"self_trade_prevention":"cancel_taker"}'
    )
    assert codec.decode(old_command).trigger_price is None
    view = OrderView(
        1, "u", None, "TATA_INR", BUY, OrderType.LIMIT, 100, 1, None, 0, 0, NEW,
        TimeInForce.GTC, False, SelfTradePrevention.CANCEL_TAKER, 5, 5,
    )  # fmt: skip
    message = codec.to_message(view)
    del message["trigger_price"], message["triggered_at"]
    assert codec.from_message(message) == view
    stop = PlaceOrder("u", "TATA_INR", SELL, MARKET, quantity=1, trigger_price=95)
    assert codec.decode(codec.encode(stop)) == stop
