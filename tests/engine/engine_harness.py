"""Shared pieces of the engine tests: a test market configuration and checks every test reuses.

``CONFIG`` has the shipped ``TATA_INR`` and ``BTC_USDT`` plus ``ETH_BTC`` with maker/taker fees
(BTC is a base in one market and the quote in another, so the ledger is shared across books).
:class:`Harness` stamps commands with sequence numbers and timestamps and checks, after every
command, what must hold whatever the command was: depth update ids chain without gaps and agree
with the book, every ``BalanceChanged`` equals the ledger, and a rejection changes nothing.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal

from exchange.engine.core import Engine
from exchange.engine.ledger import FEE_ACCOUNT
from exchange.markets import Market, MarketConfig, parse_config
from exchange.models import (
    Balance,
    BalanceChanged,
    Deposit,
    DepthChanged,
    GetDepth,
    GetOpenOrders,
    GetOrder,
    OrderStatus,
    OrderType,
    Outcome,
    PlaceOrder,
    Rejection,
    Side,
    TradeExecuted,
)
from exchange.money import to_steps

CONFIG_TOML = """
[assets]
TATA = 2
INR = 4
BTC = 8
USDT = 8
ETH = 8

[[markets]]
symbol = "TATA_INR"
base = "TATA"
quote = "INR"
tick_size = "0.01"
lot_size = "0.01"
min_quantity = "0.01"
max_price = "1000000"
max_quantity = "1000000"

[[markets]]
symbol = "BTC_USDT"
base = "BTC"
quote = "USDT"
tick_size = "0.01"
lot_size = "0.00001"
min_quantity = "0.00001"
max_price = "10000000"
max_quantity = "10000"

[[markets]]
symbol = "ETH_BTC"
base = "ETH"
quote = "BTC"
tick_size = "0.00001"
lot_size = "0.001"
min_quantity = "0.002"
max_price = "100"
max_quantity = "100000"
maker_fee_bps = 10
taker_fee_bps = 25
"""

CONFIG: MarketConfig = parse_config(tomllib.loads(CONFIG_TOML))
TS0 = 1_700_000_000_000


def ticks(market: Market, price: str) -> int:
    return to_steps(Decimal(price), market.tick_size)


def lots(market: Market, quantity: str) -> int:
    return to_steps(Decimal(quantity), market.lot_size)


class Harness:
    """An engine plus the per-command checks; ``h(cmd)`` applies one command."""

    def __init__(
        self, config: MarketConfig = CONFIG, *, check_books: bool = True, **engine_kwargs: int
    ) -> None:
        self.config = config
        self.checks_books = check_books  # off for long flows: it scans every open order
        self.engine = Engine(config, **engine_kwargs)
        self.seq = 0
        self.mirror = {m: ({}, {}) for m in config.markets}  # local books from depth events
        self.last_update_id = dict.fromkeys(config.markets, 0)

    @property
    def ts(self) -> int:
        return TS0 + self.seq

    def __call__(self, command: object) -> Outcome:
        before = self.ledger_copy()
        next_ids = (self.engine.next_order_id, self.engine.next_trade_id)
        self.seq += 1
        outcome = self.engine.apply(command, seq=self.seq, ts=self.ts)
        if isinstance(outcome.reply, Rejection):
            assert outcome.events == [], "a rejection emits nothing"
            assert self.ledger_copy() == before, "a rejection changes no balance"
            assert (self.engine.next_order_id, self.engine.next_trade_id) == next_ids
        self.check_events(outcome, before)
        return outcome

    # --- shortcuts ---------------------------------------------------------------------------

    def market(self, symbol: str) -> Market:
        return self.config.markets[symbol]

    def balance(self, user: str, asset: str) -> Balance:
        return self.engine.ledger.balance(user, asset)

    def depth(self, symbol: str):
        return self.engine.query(GetDepth(symbol))

    def book(self, symbol: str = "TATA_INR") -> tuple:
        """Levels and update id of a book (a depth without its timestamp)."""
        depth = self.depth(symbol)
        return depth.bids, depth.asks, depth.last_update_id

    def fund(self, user: str, **amounts: int) -> None:
        for asset, amount in amounts.items():
            self(Deposit(user, asset, amount))

    def limit(self, user: str, symbol: str, side: Side, price: int, quantity: int, **kw):
        return self(PlaceOrder(user, symbol, side, price=price, quantity=quantity, **kw))

    def buy(self, user: str, price: int, quantity: int, symbol: str = "TATA_INR", **kw):
        return self.limit(user, symbol, Side.BUY, price, quantity, **kw)

    def sell(self, user: str, price: int, quantity: int, symbol: str = "TATA_INR", **kw):
        return self.limit(user, symbol, Side.SELL, price, quantity, **kw)

    def market_order(self, user: str, side: Side, symbol: str = "TATA_INR", **kw):
        return self(PlaceOrder(user, symbol, side, OrderType.MARKET, **kw))

    def order(self, user: str, order_id: int):
        return self.engine.query(GetOrder(user, order_id))

    def ledger_copy(self) -> dict[tuple[str, str], tuple[int, int]]:
        return {
            (user, asset): tuple(entry)
            for user, assets in self.engine.ledger.balances.items()
            for asset, entry in assets.items()
        }

    # --- checks ------------------------------------------------------------------------------

    def check_events(self, outcome: Outcome, before: dict) -> None:
        """Balance events equal the ledger and cover every change; depth events chain."""
        after = self.ledger_copy()
        reported = set()
        for event in outcome.events:
            if isinstance(event, BalanceChanged):
                key = (event.user_id, event.asset)
                assert key not in reported, "one BalanceChanged per balance per command"
                reported.add(key)
                assert after[key] == (event.available, event.locked)
            elif isinstance(event, DepthChanged):
                self.apply_depth(event)
            elif isinstance(event, TradeExecuted):
                assert event.buyer_id != event.seller_id, "nobody trades with himself"
        changed = {key for key, value in after.items() if before.get(key, (0, 0)) != value}
        assert changed <= reported, f"balance changed without an event: {changed - reported}"
        for values in after.values():
            assert min(values) >= 0, "no balance is ever negative"
        if self.checks_books:
            self.check_books()

    def apply_depth(self, event: DepthChanged) -> None:
        market = event.market
        assert event.first_update_id == self.last_update_id[market] + 1, "update ids chain"
        assert event.last_update_id - event.first_update_id + 1 == len(event.bids) + len(event.asks)
        self.last_update_id[market] = event.last_update_id
        for levels, changes in zip(self.mirror[market], (event.bids, event.asks), strict=True):
            for price, quantity in changes:
                if quantity:
                    levels[price] = quantity
                else:
                    assert price in levels, "a removed level existed"
                    del levels[price]

    def check_books(self) -> None:
        """Depth equals the event mirror and the aggregation of open orders (stops waiting for
        their trigger aside); nothing crossed."""
        open_orders = [
            order
            for user in list(self.engine.ledger.balances)
            for order in self.engine.query(GetOpenOrders(user))
        ]
        resting = [
            order for order in open_orders if order.status is not OrderStatus.TRIGGER_PENDING
        ]
        for symbol in self.config.markets:
            depth = self.depth(symbol)
            assert depth.last_update_id == self.last_update_id[symbol]
            bids, asks = self.mirror[symbol]
            assert list(depth.bids) == sorted(bids.items(), reverse=True)
            assert list(depth.asks) == sorted(asks.items())
            if depth.bids and depth.asks:
                assert depth.bids[0][0] < depth.asks[0][0], "the book is never crossed"
            for side, levels in ((Side.BUY, depth.bids), (Side.SELL, depth.asks)):
                totals: dict[int, int] = {}
                for order in resting:
                    if order.market == symbol and order.side is side:
                        remaining = order.quantity - order.executed_quantity
                        totals[order.price] = totals.get(order.price, 0) + remaining
                assert dict(levels) == totals
        self.check_locked(open_orders)

    def check_locked(self, open_orders) -> None:
        """Locked funds are exactly what open orders still need (a waiting stop market buy: its
        quote amount, or nothing when it buys by quantity)."""
        need: dict[tuple[str, str], int] = {}
        for order in open_orders:
            market = self.market(order.market)
            if order.side is Side.SELL:
                remaining = order.quantity - order.executed_quantity
                key, amount = (order.user_id, market.base.name), market.base_units(remaining)
            elif order.type is OrderType.MARKET:
                assert order.status is OrderStatus.TRIGGER_PENDING
                key, amount = (order.user_id, market.quote.name), order.quote_quantity or 0
            else:
                remaining = order.quantity - order.executed_quantity
                key = (order.user_id, market.quote.name)
                amount = market.quote_units(order.price, remaining)
            need[key] = need.get(key, 0) + amount
        for (user, asset), (_available, locked) in self.ledger_copy().items():
            assert locked == need.get((user, asset), 0), f"locked of {user} {asset}"
        assert FEE_ACCOUNT not in {user for user, _ in need}


def trades_of(outcome: Outcome) -> list[tuple[int, int]]:
    """``(price, quantity)`` of each trade an outcome reports, in order."""
    return [(e.price, e.quantity) for e in outcome.events if isinstance(e, TradeExecuted)]


def depth_events(outcome: Outcome) -> list[DepthChanged]:
    return [e for e in outcome.events if isinstance(e, DepthChanged)]
