"""Placing orders: every order type and edge of the contract's "Orders and balances".

Most tests trade ``TATA_INR``, where a price is ticks of 0.01 INR and a quantity lots of 0.01 TATA,
so ``q`` lots at ``p`` ticks cost ``p * q`` INR minor units (0.0001 INR) and move ``q`` TATA minor
units. Every command goes through :class:`engine_harness.Harness`, which also checks its events.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from engine_harness import Harness, depth_events, lots, ticks, trades_of

from exchange.engine.ledger import FEE_ACCOUNT
from exchange.errors import ErrorCode
from exchange.models import (
    Balance,
    Fill,
    GetDepth,
    OrderStatus,
    OrderType,
    PlaceOrder,
    Rejection,
    SelfTradePrevention,
    Side,
    TimeInForce,
)

BUY, SELL = Side.BUY, Side.SELL
RICH = {"TATA": 10_000, "INR": 10_000_000}


@pytest.fixture
def h() -> Harness:
    h = Harness()
    for user in ("alice", "bob", "carol"):
        h.fund(user, **RICH)
    return h


# --- limit orders -------------------------------------------------------------------------------


def test_limit_buy_rests_and_locks_price_times_quantity(h: Harness) -> None:
    reply = h.buy("alice", 100, 5).reply
    assert (reply.status, reply.executed_quantity, reply.fills) == (OrderStatus.NEW, 0, ())
    assert h.balance("alice", "INR") == Balance(10_000_000 - 500, 500)
    assert h.depth("TATA_INR").bids == ((100, 5),)


def test_limit_sell_rests_and_locks_quantity_of_base(h: Harness) -> None:
    h.sell("alice", 100, 7)
    assert h.balance("alice", "TATA") == Balance(10_000 - 7, 7)
    assert h.depth("TATA_INR").asks == ((100, 7),)


def test_partial_fills_across_many_levels_at_maker_prices(h: Harness) -> None:
    h.sell("bob", 101, 3)
    h.sell("carol", 102, 4)
    h.sell("bob", 103, 5)
    out = h.buy("alice", 103, 10)
    assert trades_of(out) == [(101, 3), (102, 4), (103, 3)]
    reply = out.reply
    assert reply.status is OrderStatus.FILLED
    assert (reply.executed_quantity, reply.executed_quote_quantity) == (10, 303 + 408 + 309)
    assert [(f.price, f.quantity) for f in reply.fills] == [(101, 3), (102, 4), (103, 3)]
    # Locked 10 * 103; paid 1020; the 10 difference came back.
    assert h.balance("alice", "INR") == Balance(10_000_000 - 1020, 0)
    assert h.balance("alice", "TATA") == Balance(10_000 + 10, 0)
    assert h.balance("bob", "INR") == Balance(10_000_000 + 303 + 309, 0)
    assert h.balance("bob", "TATA") == Balance(10_000 - 8, 2)
    assert h.depth("TATA_INR").asks == ((103, 2),)
    assert h.order("bob", 1).status is OrderStatus.FILLED
    assert h.order("carol", 2).status is OrderStatus.FILLED
    assert h.order("bob", 3).status is OrderStatus.PARTIALLY_FILLED


def test_unfilled_rest_of_a_gtc_order_rests_at_its_price(h: Harness) -> None:
    h.sell("bob", 101, 3)
    h.sell("bob", 102, 4)
    h.sell("bob", 103, 5)
    reply = h.buy("alice", 102, 10).reply
    assert (reply.status, reply.executed_quantity) == (OrderStatus.PARTIALLY_FILLED, 7)
    # Paid 303 + 408; the rest (3 lots) stays locked at its own price.
    assert h.balance("alice", "INR") == Balance(10_000_000 - 711 - 306, 306)
    depth = h.depth("TATA_INR")
    assert (depth.bids, depth.asks) == (((102, 3),), ((103, 5),))


def test_trade_executes_at_maker_price_and_refunds_a_limit_buyer(h: Harness) -> None:
    h.sell("bob", 95, 5)
    out = h.buy("alice", 100, 5)
    assert trades_of(out) == [(95, 5)]
    assert h.balance("alice", "INR") == Balance(10_000_000 - 475, 0)


def test_a_selling_taker_gets_the_resting_bid_price(h: Harness) -> None:
    h.buy("bob", 105, 5)
    out = h.sell("alice", 100, 5)
    assert trades_of(out) == [(105, 5)]
    assert out.events[0].is_buyer_maker
    assert h.balance("alice", "INR") == Balance(10_000_000 + 525, 0)


def test_price_time_priority_within_a_level(h: Harness) -> None:
    first = h.sell("bob", 100, 2).reply.order_id
    second = h.sell("carol", 100, 2).reply.order_id
    out = h.buy("alice", 100, 3)
    sellers = [e.sell_order_id for e in out.events if hasattr(e, "sell_order_id")]
    assert sellers == [first, second]
    assert h.order("carol", second).executed_quantity == 1


def test_better_price_beats_earlier_time(h: Harness) -> None:
    h.sell("bob", 101, 2)
    better = h.sell("carol", 100, 2).reply.order_id
    out = h.buy("alice", 101, 2)
    assert [e.sell_order_id for e in out.events if hasattr(e, "sell_order_id")] == [better]


def test_ioc_takes_what_it_can_and_expires_the_rest(h: Harness) -> None:
    h.sell("bob", 100, 3)
    reply = h.buy("alice", 100, 5, time_in_force=TimeInForce.IOC).reply
    assert (reply.status, reply.executed_quantity) == (OrderStatus.EXPIRED, 3)
    assert h.balance("alice", "INR") == Balance(10_000_000 - 300, 0)
    assert h.depth("TATA_INR").bids == ()


def test_ioc_that_crosses_nothing_expires_without_fills(h: Harness) -> None:
    h.sell("bob", 101, 3)
    out = h.buy("alice", 100, 5, time_in_force=TimeInForce.IOC)
    assert (out.reply.status, out.reply.fills) == (OrderStatus.EXPIRED, ())
    assert h.balance("alice", "INR") == Balance(10_000_000, 0)
    assert depth_events(out) == []


def test_fok_fills_completely_when_it_can(h: Harness) -> None:
    h.sell("bob", 100, 3)
    h.sell("carol", 101, 3)
    reply = h.buy("alice", 101, 5, time_in_force=TimeInForce.FOK).reply
    assert (reply.status, reply.executed_quantity) == (OrderStatus.FILLED, 5)


@pytest.mark.parametrize("price", [101, 102])
def test_fok_that_cannot_fill_completely_changes_nothing(h: Harness, price: int) -> None:
    h.sell("bob", 100, 3)
    h.sell("carol", 101, 3)
    h.sell("carol", 103, 9)  # beyond the limit: does not count
    before = (h.ledger_copy(), h.book())
    out = h.buy("alice", price, 7, time_in_force=TimeInForce.FOK)
    assert (out.reply.status, out.reply.executed_quantity) == (OrderStatus.EXPIRED, 0)
    assert [type(e).__name__ for e in out.events] == ["OrderUpdated"]
    assert (h.ledger_copy(), h.book()) == before  # incl. last_update_id


def test_fok_does_not_count_own_orders_it_would_not_trade(h: Harness) -> None:
    h.sell("bob", 100, 3)
    h.sell("alice", 100, 5)
    out = h.buy("alice", 100, 5, time_in_force=TimeInForce.FOK)
    assert out.reply.status is OrderStatus.EXPIRED
    assert trades_of(out) == []


def test_post_only_rests_when_it_would_not_take(h: Harness) -> None:
    h.sell("bob", 101, 3)
    reply = h.buy("alice", 100, 5, post_only=True).reply
    assert reply.status is OrderStatus.NEW
    assert h.depth("TATA_INR").bids == ((100, 5),)


def test_post_only_that_would_take_is_rejected_and_changes_no_funds(h: Harness) -> None:
    h.sell("bob", 100, 3)
    before = (h.ledger_copy(), h.book())
    out = h.buy("alice", 100, 5, post_only=True)
    assert out.reply.status is OrderStatus.REJECTED
    assert [type(e).__name__ for e in out.events] == ["OrderUpdated"]
    assert (h.ledger_copy(), h.book()) == before
    assert h.order("alice", out.reply.order_id).status is OrderStatus.REJECTED


# --- market orders ------------------------------------------------------------------------------


def test_market_sell_walks_the_bids(h: Harness) -> None:
    h.buy("bob", 100, 2)
    h.buy("carol", 99, 3)
    out = h.market_order("alice", SELL, quantity=4)
    assert trades_of(out) == [(100, 2), (99, 2)]
    assert out.reply.status is OrderStatus.FILLED
    assert out.reply.price is None
    assert h.balance("alice", "INR") == Balance(10_000_000 + 398, 0)
    assert h.balance("alice", "TATA") == Balance(10_000 - 4, 0)


def test_market_sell_larger_than_the_book_expires_the_rest(h: Harness) -> None:
    h.buy("bob", 100, 2)
    reply = h.market_order("alice", SELL, quantity=5).reply
    assert (reply.status, reply.executed_quantity) == (OrderStatus.EXPIRED, 2)
    assert h.balance("alice", "TATA") == Balance(10_000 - 2, 0)


def test_market_sell_needs_its_quantity_of_base(h: Harness) -> None:
    h.fund("dave", INR=1_000)
    h.buy("bob", 100, 2)
    out = h.market_order("dave", SELL, quantity=1)
    assert out.reply.code is ErrorCode.INSUFFICIENT_FUNDS


@pytest.mark.parametrize(
    ("side", "kw"),
    [(SELL, {"quantity": 3}), (BUY, {"quantity": 3}), (BUY, {"quote_quantity": 1_000})],
    ids=["sell", "buy by quantity", "buy by quote"],
)
def test_market_order_on_an_empty_book_expires_with_no_fills(h: Harness, side, kw) -> None:
    before = h.ledger_copy()
    out = h.market_order("alice", side, **kw)
    assert (out.reply.status, out.reply.fills) == (OrderStatus.EXPIRED, ())
    assert h.ledger_copy() == before
    assert depth_events(out) == []


def test_market_buy_by_quantity_fills_it(h: Harness) -> None:
    h.sell("bob", 100, 2)
    h.sell("carol", 101, 5)
    reply = h.market_order("alice", BUY, quantity=4).reply
    assert (reply.status, reply.executed_quantity, reply.executed_quote_quantity) == (
        OrderStatus.FILLED,
        4,
        200 + 202,
    )
    assert h.balance("alice", "INR") == Balance(10_000_000 - 402, 0)


def test_market_buy_by_quantity_stops_when_the_quote_runs_out(h: Harness) -> None:
    h.fund("dave", INR=250)
    h.sell("bob", 100, 2)
    h.sell("carol", 101, 5)
    reply = h.market_order("dave", BUY, quantity=5).reply
    # 2 lots for 200; the 50 left cannot pay 101 for the next lot.
    assert (reply.status, reply.executed_quantity) == (OrderStatus.EXPIRED, 2)
    assert h.balance("dave", "INR") == Balance(50, 0)
    assert h.balance("dave", "TATA") == Balance(2, 0)


def test_market_buy_by_quantity_needs_some_quote(h: Harness) -> None:
    h.sell("bob", 100, 2)
    out = h.market_order("dave", BUY, quantity=1)
    assert out.reply.code is ErrorCode.INSUFFICIENT_FUNDS


def test_market_buy_by_quote_spends_at_most_it(h: Harness) -> None:
    h.sell("bob", 100, 2)
    h.sell("carol", 101, 5)
    reply = h.market_order("alice", BUY, quote_quantity=350).reply
    # 2 lots at 100, then 150 buys one lot at 101; the 49 left cannot buy another: filled.
    assert (reply.status, reply.executed_quantity, reply.executed_quote_quantity) == (
        OrderStatus.FILLED,
        3,
        301,
    )
    assert reply.quote_quantity == 350 and reply.quantity is None
    assert h.balance("alice", "INR") == Balance(10_000_000 - 301, 0)


def test_market_buy_by_quote_that_spends_it_all_as_the_book_ends_is_filled(h: Harness) -> None:
    h.sell("bob", 100, 5)
    reply = h.market_order("alice", BUY, quote_quantity=500).reply
    assert (reply.status, reply.executed_quantity) == (OrderStatus.FILLED, 5)
    assert h.depth("TATA_INR").asks == ()


def test_market_buy_by_quote_left_with_money_when_the_book_ends_expires(h: Harness) -> None:
    h.sell("bob", 100, 2)
    reply = h.market_order("alice", BUY, quote_quantity=500).reply
    assert (reply.status, reply.executed_quantity) == (OrderStatus.EXPIRED, 2)
    assert h.balance("alice", "INR") == Balance(10_000_000 - 200, 0)


def test_market_buy_by_quote_too_small_for_one_lot_expires_without_fills(h: Harness) -> None:
    h.sell("bob", 100, 2)
    out = h.market_order("alice", BUY, quote_quantity=99)
    assert (out.reply.status, out.reply.fills) == (OrderStatus.EXPIRED, ())
    assert h.balance("alice", "INR") == Balance(10_000_000, 0)


def test_market_buy_by_quote_needs_that_much_quote(h: Harness) -> None:
    h.fund("dave", INR=100)
    h.sell("bob", 100, 2)
    assert h.market_order("dave", BUY, quote_quantity=101).reply.code is (
        ErrorCode.INSUFFICIENT_FUNDS
    )


@pytest.mark.parametrize("stp", ["cancel_taker", "cancel_maker", "cancel_both"])
def test_budget_runs_out_before_self_trade_prevention_looks(h: Harness, stp: str) -> None:
    """Out of money at a price is out of money, whoever's order is next there."""
    h.sell("bob", 100, 1)
    own = h.sell("alice", 100, 1).reply.order_id
    reply = h.market_order(
        "alice", BUY, quote_quantity=100, self_trade_prevention=SelfTradePrevention(stp)
    ).reply
    assert (reply.status, reply.executed_quantity) == (OrderStatus.FILLED, 1)
    assert h.order("alice", own).status is OrderStatus.NEW


# --- exact arithmetic ---------------------------------------------------------------------------


def test_exact_remainder_arithmetic_on_btc_usdt() -> None:
    h = Harness()
    m = h.market("BTC_USDT")
    h.fund("alice", USDT=m.quote.to_units(Decimal("100")))
    h.fund("bob", BTC=m.base.to_units(Decimal("0.00123")))
    h.sell("bob", ticks(m, "30000.01"), lots(m, "0.00123"), symbol="BTC_USDT")
    out = h.buy("alice", ticks(m, "30000.05"), lots(m, "0.001"), symbol="BTC_USDT")
    trade = out.events[0]
    # 30000.01 * 0.001 = 30.00001 USDT exactly; the buyer locked 30.00005 and gets 0.00004 back.
    assert m.quote.format(trade.quote_quantity) == "30.00001"
    assert m.format_quantity(trade.quantity) == "0.001"
    assert m.quote.format(h.balance("alice", "USDT").available) == "69.99999"
    assert h.balance("alice", "USDT").locked == 0
    assert m.base.format(h.balance("alice", "BTC").available) == "0.001"
    assert m.base.format(h.balance("bob", "BTC").locked) == "0.00023"
    assert m.quote.format(h.balance("bob", "USDT").available) == "30.00001"
    assert h.depth("BTC_USDT").asks == ((ticks(m, "30000.01"), lots(m, "0.00023")),)


def test_smallest_trade_moves_one_minor_unit_of_inr(h: Harness) -> None:
    h.sell("bob", 1, 1)  # 0.01 TATA at 0.01 INR = 0.0001 INR
    h.buy("alice", 1, 1)
    assert h.balance("bob", "INR").available == 10_000_000 + 1


def test_fees_go_to_the_fee_account_and_funds_are_conserved() -> None:
    """ETH_BTC charges makers 10 bps and takers 25 bps of what they receive."""
    h = Harness()
    m = h.market("ETH_BTC")
    h.fund("maker", ETH=10**8)
    h.fund("taker", BTC=10**8)
    h.sell("maker", 5_000, 10, symbol="ETH_BTC")  # 0.01 ETH at 0.05 BTC
    h.buy("taker", 5_000, 10, symbol="ETH_BTC")
    quote, base = m.quote_units(5_000, 10), m.base_units(10)
    assert (quote, base) == (50_000, 1_000_000)
    assert h.balance("maker", "BTC") == Balance(quote - quote * 10 // 10_000, 0)
    assert h.balance("taker", "ETH") == Balance(base - base * 25 // 10_000, 0)
    assert h.balance(FEE_ACCOUNT, "BTC") == Balance(50, 0)
    assert h.balance(FEE_ACCOUNT, "ETH") == Balance(2_500, 0)
    assert h.engine.ledger.totals() == {"ETH": 10**8, "BTC": 10**8}


# --- validation ---------------------------------------------------------------------------------

L, M = OrderType.LIMIT, OrderType.MARKET
INVALID = [
    (dict(market="NOPE_INR", side=BUY, price=100, quantity=1), ErrorCode.INVALID_MARKET),
    (dict(side=BUY, price=None, quantity=1), ErrorCode.INVALID_PRICE),
    (dict(side=BUY, price=0, quantity=1), ErrorCode.INVALID_PRICE),
    (dict(side=BUY, price=-5, quantity=1), ErrorCode.INVALID_PRICE),
    (dict(side=BUY, price=100_000_001, quantity=1), ErrorCode.INVALID_PRICE),  # > 1,000,000
    (dict(side=BUY, price=100, quantity=None), ErrorCode.INVALID_QUANTITY),
    (dict(side=BUY, price=100, quantity=0), ErrorCode.INVALID_QUANTITY),
    (dict(side=BUY, price=100, quantity=100_000_001), ErrorCode.INVALID_QUANTITY),
    (dict(side=BUY, price=100, quantity=1, quote_quantity=5), ErrorCode.INVALID_ORDER),
    (dict(side=BUY, price=100, quantity=1, post_only=True, time_in_force="IOC"), "INVALID_ORDER"),
    (dict(side=BUY, price=100, quantity=1, client_order_id=""), "INVALID_CLIENT_ORDER_ID"),
    (dict(side=BUY, price=100, quantity=1, client_order_id="x" * 37), "INVALID_CLIENT_ORDER_ID"),
    (dict(side=SELL, type=M, price=100, quantity=1), ErrorCode.INVALID_PRICE),
    (dict(side=SELL, type=M, quantity=None), ErrorCode.INVALID_QUANTITY),
    (dict(side=SELL, type=M, quote_quantity=100), ErrorCode.INVALID_QUANTITY),
    (dict(side=BUY, type=M, quantity=1, quote_quantity=100), ErrorCode.INVALID_QUANTITY),
    (dict(side=BUY, type=M, quote_quantity=0), ErrorCode.INVALID_QUANTITY),
    (dict(side=BUY, type=M, quantity=1, time_in_force="FOK"), ErrorCode.INVALID_ORDER),
    (dict(side=BUY, type=M, quantity=1, post_only=True), ErrorCode.INVALID_ORDER),
]


@pytest.mark.parametrize(("fields", "code"), INVALID)
def test_invalid_orders_are_refused_with_the_contract_code(h: Harness, fields, code) -> None:
    fields = {"market": "TATA_INR", "user_id": "alice", **fields}
    if "time_in_force" in fields:
        fields["time_in_force"] = TimeInForce(fields["time_in_force"])
    h.sell("bob", 100, 3)
    out = h(PlaceOrder(**fields))  # the harness checks that nothing changed
    assert isinstance(out.reply, Rejection)
    assert out.reply.code == code
    assert out.reply.message


def test_quantity_below_the_market_minimum_is_refused() -> None:
    h = Harness()
    h.fund("alice", BTC=10**8)
    m = h.market("ETH_BTC")  # lot 0.001, minimum 0.002
    assert m.min_lots == 2
    out = h.buy("alice", 5_000, 1, symbol="ETH_BTC")
    assert out.reply.code is ErrorCode.INVALID_QUANTITY
    assert h.buy("alice", 5_000, 2, symbol="ETH_BTC").reply.status is OrderStatus.NEW


def test_insufficient_funds_changes_nothing(h: Harness) -> None:
    h.fund("dave", INR=499)
    h.sell("bob", 100, 5)
    next_id = h.engine.next_order_id
    before = (h.ledger_copy(), h.book())
    out = h.buy("dave", 100, 5)
    assert out.reply.code is ErrorCode.INSUFFICIENT_FUNDS
    assert out.events == []
    assert (h.ledger_copy(), h.book(), h.engine.next_order_id) == (*before, next_id)
    # Locked funds are not available either.
    h.fund("dave", INR=1)
    h.buy("dave", 99, 5)  # locks 495 of 500
    assert h.buy("dave", 6, 1).reply.code is ErrorCode.INSUFFICIENT_FUNDS
    assert h.buy("dave", 5, 1).reply.status is OrderStatus.NEW


def test_the_extreme_price_and_quantity_are_accepted() -> None:
    h = Harness()
    m = h.market("TATA_INR")
    h.fund("alice", INR=m.quote_units(m.max_ticks, m.max_lots))
    reply = h.buy("alice", m.max_ticks, m.max_lots).reply
    assert reply.status is OrderStatus.NEW
    assert h.engine.query(GetDepth("TATA_INR", limit=1)).bids == ((m.max_ticks, m.max_lots),)


# --- client order ids ---------------------------------------------------------------------------


def test_a_repeated_client_order_id_returns_the_original_and_changes_nothing(h: Harness) -> None:
    first = h.buy("alice", 100, 5, client_order_id="mine").reply
    before = (h.ledger_copy(), h.book(), h.engine.next_order_id)
    again = h.sell("alice", 120, 1, client_order_id="mine")  # other fields do not matter
    assert again.reply == first
    assert again.events == []
    assert (h.ledger_copy(), h.book(), h.engine.next_order_id) == before


def test_the_repeat_shows_the_original_as_it_is_now(h: Harness) -> None:
    h.buy("alice", 100, 5, client_order_id="mine")
    h.sell("bob", 100, 5)
    again = h.buy("alice", 100, 5, client_order_id="mine").reply
    assert (again.status, again.executed_quantity, len(again.fills)) == (
        OrderStatus.FILLED,
        5,
        1,
    )


def test_a_rejected_order_keeps_its_client_id(h: Harness) -> None:
    h.sell("bob", 100, 5)
    first = h.buy("alice", 100, 5, client_order_id="po", post_only=True).reply
    assert first.status is OrderStatus.REJECTED
    assert h.buy("alice", 90, 5, client_order_id="po").reply == first


def test_client_ids_are_per_user(h: Harness) -> None:
    a = h.buy("alice", 100, 5, client_order_id="same").reply
    b = h.buy("bob", 100, 5, client_order_id="same").reply
    assert a.order_id != b.order_id and b.user_id == "bob"


def test_fills_carry_trade_ids(h: Harness) -> None:
    h.sell("bob", 100, 2)
    h.sell("bob", 101, 2)
    fills = h.buy("alice", 101, 4).reply.fills
    assert fills == (Fill(1, 100, 2), Fill(2, 101, 2))
