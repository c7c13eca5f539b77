"""Model-based tests: the engine runs beside the naive reference on random command sequences.

After every command the replies and trades of both must be equal, and the engine's state must
keep the invariants (:class:`engine_harness.Harness` checks the per-command ones): funds
conserved per asset, nothing negative, locked = what open orders need, the book never crossed,
depth equal to the open orders and to the event stream, trades at the maker's price in
price-time priority, nobody trading with himself, and no stop order still waiting that a trade
since its placement should have triggered. At the end of each run the whole log is replayed on a fresh engine:
its events must be byte-identical (``codec.encode``) and its state hash equal. The run itself
swaps its engine for a snapshot-restored copy at random points, so that replay also shows that
snapshot → restore → continue gives the same events as running straight through.

Bounded for the suite (profile ``engine``: 300 runs of up to 50 steps, ~20 s). For a longer hunt:
``ENGINE_HYPOTHESIS_PROFILE=engine-long ENGINE_HYPOTHESIS_EXAMPLES=5000 pytest tests/engine
--hypothesis-show-statistics`` (the statistics show the mix of outcomes and trades per run).
"""

from __future__ import annotations

import os

import attrs
from engine_harness import CONFIG, Harness
from hypothesis import HealthCheck, settings
from hypothesis import event as tally
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from reference import Reference

from exchange import codec
from exchange.engine import snapshot
from exchange.engine.core import Engine
from exchange.engine.ledger import FEE_ACCOUNT
from exchange.models import (
    CancelAll,
    CancelOrder,
    Deposit,
    GetAudit,
    GetBalances,
    GetDepth,
    GetOpenOrders,
    GetOrder,
    OrderStatus,
    OrderType,
    Outcome,
    PlaceOrder,
    Rejection,
    SelfTradePrevention,
    Side,
    TimeInForce,
    TradeExecuted,
    Transferred,
    Withdraw,
)

settings.register_profile(
    "engine",
    max_examples=300,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "engine-long",
    parent=settings.get_profile("engine"),
    max_examples=int(os.environ.get("ENGINE_HYPOTHESIS_EXAMPLES", "3000")),
)
PROFILE = settings.get_profile(os.environ.get("ENGINE_HYPOTHESIS_PROFILE", "engine"))

# Prices are drawn a few ticks around a centre so that orders cross often.
CENTRE_TICKS = {"TATA_INR": 10_000, "BTC_USDT": 3_000_000, "ETH_BTC": 5_000}
SPREAD_TICKS = 2
MAX_ORDER_MIN_LOTS = 12
CLIENT_IDS = [None] * 6 + ["a", "b", "c"]  # few, so that repeats happen
LIMIT_TIFS = [TimeInForce.GTC] * 3 + [TimeInForce.IOC, TimeInForce.FOK]
STOP_SHARE = [False] * 2 + [True]  # a third of the orders have a trigger price
TRIGGER_TICKS = 2  # triggers within this many ticks of the last trade price
ACTIONS = (
    ["limit"] * 10
    + ["market"] * 3
    + ["print"] * 2
    + ["cancel"] * 3
    + ["invalid", "cancel_all", "deposit", "withdraw", "drain", "get_order", "restore"]
)


def _scales() -> dict[str, int]:
    """Per asset, what one of the largest orders costs: deposits are drawn around it."""
    scale: dict[str, int] = {}
    for symbol, m in CONFIG.markets.items():
        most = MAX_ORDER_MIN_LOTS * m.min_lots
        quote = m.quote_units(CENTRE_TICKS[symbol] + SPREAD_TICKS, most)
        scale[m.quote.name] = max(scale.get(m.quote.name, 0), quote)
        scale[m.base.name] = max(scale.get(m.base.name, 0), m.base_units(most))
    return scale


SCALE = _scales()


def normal(reply: object) -> object:
    """Rejections compare by code (messages are free text); a transfer by its balances (the
    reference has no sequence numbers, and the id is the seq by construction)."""
    if isinstance(reply, Transferred):
        return reply.balances
    return ("rejected", reply.code) if isinstance(reply, Rejection) else reply


class EngineVersusReference(RuleBasedStateMachine):
    @initialize(
        users=st.integers(3, 5),
        markets=st.lists(
            st.sampled_from(sorted(CONFIG.markets)), min_size=2, max_size=3, unique=True
        ),
        retention=st.sampled_from([4, 25, 100_000]),
        data=st.data(),
    )
    def setup(self, users: int, markets: list[str], retention: int, data) -> None:
        self.users = [f"u{i}" for i in range(users)]
        self.markets = markets
        self.assets = sorted({a.name for m in markets for a in CONFIG.markets[m].assets})
        self.h = Harness(CONFIG, closed_order_retention=retention)
        self.ref = Reference(CONFIG, retention)
        self.retention = retention
        self.net: dict[str, int] = {}  # deposits - withdrawals per asset
        self.log: list[tuple[object, int, int]] = []
        self.encoded: list[list[bytes]] = []
        self.restores = 0
        for user in self.users:
            for asset in self.assets:
                times = data.draw(st.sampled_from([20, 20, 20, 1, 0]), label="fund")
                if times:
                    self.run(Deposit(user, asset, times * SCALE[asset]))

    # --- the step ------------------------------------------------------------------------------

    def run(self, command: object) -> Outcome:
        queue = self.priority_queue(command) if isinstance(command, PlaceOrder) else None
        outcome = self.h(command)
        seq, ts = self.h.seq, self.h.ts
        expected = self.ref.apply(command, ts=ts)
        self.log.append((command, seq, ts))
        self.encoded.append([codec.encode(event) for event in outcome.events])

        assert normal(outcome.reply) == normal(expected.reply)
        reply = outcome.reply
        if isinstance(command, PlaceOrder):
            stop = "stop " if command.trigger_price is not None else ""
            tally(
                f"{stop}{command.type} -> "
                f"{reply.code if isinstance(reply, Rejection) else reply.status}"
            )
        trades = [e for e in outcome.events if isinstance(e, TradeExecuted)]
        assert trades == expected.trades
        depth = {
            e.market: (e.first_update_id, e.last_update_id, e.bids, e.asks)
            for e in outcome.events
            if type(e).__name__ == "DepthChanged"
        }
        assert depth == expected.depth
        # An order's last event of the command is its state after it (triggered stops may
        # change an order more than once in one command).
        last_views = {
            e.order.order_id: e.order for e in outcome.events if type(e).__name__ == "OrderUpdated"
        }
        for order_id, view in last_views.items():
            order = self.ref.find(order_id)
            if order is not None:  # (None: closed long ago and forgotten by both)
                # (the taker's event also carries its fills: it is the reply's view)
                assert attrs.evolve(view, fills=()) == attrs.evolve(order.view(), fills=())
        own: list[TradeExecuted] = []  # the trades of the command's own order
        if queue is not None and not isinstance(reply, Rejection):
            taker_side = "buy_order_id" if command.side is Side.BUY else "sell_order_id"
            own = [
                t
                for t in trades
                if t.taker_side is command.side and getattr(t, taker_side) == reply.order_id
            ]  # (it may also be the maker of a triggered stop)
            self.check_priority(command, queue, own)
        triggered = sum(1 for v in last_views.values() if v.triggered_at == ts)
        if triggered:
            tally(f"stops triggered by one command: {'3+' if triggered >= 3 else triggered}")
            if len(trades) > len(own):
                tally("triggered stops traded")
            if any(
                v.triggered_at == ts and v.status is OrderStatus.REJECTED
                for v in last_views.values()
            ):
                tally("a triggered stop failed (no money)")
        if not isinstance(outcome.reply, Rejection):
            if isinstance(command, Deposit):
                self.net[command.asset] = self.net.get(command.asset, 0) + command.amount
            elif isinstance(command, Withdraw):
                self.net[command.asset] = self.net.get(command.asset, 0) - command.amount
        return outcome

    def priority_queue(self, command: PlaceOrder) -> list:
        """The opposite side's open orders, in the order they must trade (before the command).

        Within a price, time priority is when an order entered the book, which the reference
        records (a stop enters it when it triggers, behind orders placed meanwhile).
        """
        if command.market not in CONFIG.markets:
            return []
        side = command.side.opposite
        orders = [
            o
            for user in self.users
            for o in self.h.engine.query(GetOpenOrders(user, command.market))
            if o.side is side and o.status is not OrderStatus.TRIGGER_PENDING
        ]
        entered = {o.order_id: o.entered_book for o in self.ref.open_orders()}
        sign = -1 if side is Side.BUY else 1
        return sorted(orders, key=lambda o: (sign * o.price, entered[o.order_id]))

    @staticmethod
    def check_priority(command: PlaceOrder, queue: list, trades: list[TradeExecuted]) -> None:
        """Makers trade best price first, oldest first, each at its own price, skipping only
        the taker's own orders (self-trade prevention); all but the last are used up."""
        others = [o for o in queue if o.user_id != command.user_id]
        position = -1
        for trade in trades:
            maker_id = trade.sell_order_id if command.side is Side.BUY else trade.buy_order_id
            if position < 0 or others[position].order_id != maker_id:
                position += 1
            maker = others[position]
            assert maker.order_id == maker_id, "price-time priority"
            assert trade.price == maker.price, "a trade executes at the maker's price"
            if command.price is not None:
                assert (
                    trade.price <= command.price
                    if command.side is Side.BUY
                    else trade.price >= command.price
                )
        makers = []
        for trade in trades:
            maker_id = trade.sell_order_id if command.side is Side.BUY else trade.buy_order_id
            if not makers or makers[-1][0] != maker_id:
                makers.append([maker_id, 0])
            makers[-1][1] += trade.quantity
        by_id = {o.order_id: o for o in others}
        for maker_id, traded in makers[:-1]:
            maker = by_id[maker_id]
            assert traded == maker.quantity - maker.executed_quantity, "a maker is used up first"

    # --- drawing -------------------------------------------------------------------------------

    def user(self, data) -> str:
        return data.draw(st.sampled_from(self.users), label="user")

    def market(self, data) -> str:
        return data.draw(st.sampled_from(self.markets), label="market")

    def price(self, data, symbol: str) -> int:
        offset = data.draw(st.integers(-SPREAD_TICKS, SPREAD_TICKS), label="offset")
        return CENTRE_TICKS[symbol] + offset

    def quantity(self, data, symbol: str) -> int:
        m = CONFIG.markets[symbol]
        return m.min_lots * data.draw(st.integers(1, MAX_ORDER_MIN_LOTS), label="lots")

    # --- the one rule ----------------------------------------------------------------------------
    # Hypothesis picks among rules uniformly; one rule drawing a weighted action keeps most steps
    # orders (so books fill up and cross) while every other command still comes up.

    @rule(data=st.data(), action=st.sampled_from(ACTIONS))
    def act(self, data, action: str) -> None:
        getattr(self, f"do_{action}")(data)

    def do_deposit(self, data) -> None:
        asset = data.draw(st.sampled_from([*self.assets, "DOGE"]), label="asset")
        scale = SCALE.get(asset, 100)
        amount = data.draw(st.one_of(st.integers(-2, 0), st.integers(1, 4 * scale)), label="amt")
        self.run(Deposit(self.user(data), asset, amount))

    def do_withdraw(self, data) -> None:
        user = self.user(data)
        asset = data.draw(st.sampled_from([*self.assets, "DOGE"]), label="asset")
        available = self.h.balance(user, asset).available
        amount = data.draw(
            st.one_of(st.integers(-1, 0), st.integers(1, available + 2)), label="amt"
        )
        self.run(Withdraw(user, asset, amount))

    def do_drain(self, data) -> None:
        """Withdraw all that is available of one asset: a stop market buy by quantity that
        triggers then finds no money."""
        user = self.user(data)
        asset = data.draw(st.sampled_from(self.assets), label="asset")
        available = self.h.balance(user, asset).available
        if available:
            self.run(Withdraw(user, asset, available))

    def order_options(self, data, symbol: str) -> dict:
        return {
            "self_trade_prevention": data.draw(st.sampled_from(SelfTradePrevention), label="stp"),
            "client_order_id": data.draw(st.sampled_from(CLIENT_IDS), label="cid"),
            "trigger_price": self.trigger(data, symbol),
        }

    def trigger(self, data, symbol: str) -> int | None:
        """Mostly none; else a few ticks around the last trade price (sometimes equal to it,
        which is refused), so that stops trigger, cascade and wait."""
        if not data.draw(st.sampled_from(STOP_SHARE), label="stop"):
            return None
        last = self.ref.last_price[symbol] or CENTRE_TICKS[symbol]
        return last + data.draw(st.integers(-TRIGGER_TICKS, TRIGGER_TICKS), label="trigger")

    def do_limit(self, data) -> None:
        symbol = self.market(data)
        side = data.draw(st.sampled_from(Side), label="side")
        tif = data.draw(st.sampled_from(LIMIT_TIFS), label="tif")
        post_only = data.draw(st.sampled_from([False, False, False, True]), label="post_only")
        if post_only:
            tif = TimeInForce.GTC
        options = self.order_options(data, symbol)
        if options["trigger_price"] is not None:  # (do_invalid tries post-only and FOK stops)
            post_only = False
            tif = TimeInForce.IOC if tif is TimeInForce.IOC else TimeInForce.GTC
        self.run(
            PlaceOrder(
                self.user(data),
                symbol,
                side,
                price=self.price(data, symbol),
                quantity=self.quantity(data, symbol),
                time_in_force=tif,
                post_only=post_only,
                **options,
            )
        )

    def do_market(self, data) -> None:
        symbol = self.market(data)
        m = CONFIG.markets[symbol]
        side = data.draw(st.sampled_from(Side), label="side")
        tif = data.draw(st.sampled_from([TimeInForce.GTC, TimeInForce.IOC]), label="tif")
        quantity, quote = self.quantity(data, symbol), None
        if side is Side.BUY and data.draw(st.booleans(), label="by_quote"):
            # Budgets from a fraction of one lot to several lots: any amount, or exactly what
            # some lots cost at one of the prices in play (so a budget can run out exactly).
            unit = m.quote_units(CENTRE_TICKS[symbol], 1)
            kind = data.draw(st.sampled_from(["any", "exact", "book"]), label="budget")
            asks = self.h.engine.query(GetDepth(symbol)).asks
            if kind == "book" and asks:
                # Exactly what the first k lots of the book cost: a budget that runs out at a
                # level's edge, in the middle of a level, or together with the book.
                k = data.draw(st.integers(1, sum(q for _, q in asks)), label="k")
                quote = 0
                for price, available in asks:
                    take = min(k, available)
                    quote, k = quote + m.quote_units(price, take), k - take
            elif kind == "exact":
                quote = m.quote_units(self.price(data, symbol), self.quantity(data, symbol))
            else:
                most = unit * MAX_ORDER_MIN_LOTS * m.min_lots
                quote = data.draw(st.integers(1, most), label="quote")
            quantity = None
        self.run(
            PlaceOrder(
                self.user(data),
                symbol,
                side,
                OrderType.MARKET,
                quantity=quantity,
                quote_quantity=quote,
                time_in_force=tif,
                **self.order_options(data, symbol),
            )
        )

    def do_print(self, data) -> None:
        """A trade between two users at a drawn price (if the book lets it through): it moves the
        last trade price, which stop orders wait on."""
        symbol = self.market(data)
        seller, buyer = data.draw(
            st.lists(st.sampled_from(self.users), min_size=2, max_size=2, unique=True),
            label="pair",
        )
        price, quantity = self.price(data, symbol), CONFIG.markets[symbol].min_lots
        self.run(PlaceOrder(seller, symbol, Side.SELL, price=price, quantity=quantity))
        self.run(PlaceOrder(buyer, symbol, Side.BUY, price=price, quantity=quantity))

    def do_invalid(self, data) -> None:
        symbol = self.market(data)
        m = CONFIG.markets[symbol]
        user, price, qty = self.user(data), self.price(data, symbol), self.quantity(data, symbol)
        buy, sell, market = Side.BUY, Side.SELL, OrderType.MARKET
        bad = [
            PlaceOrder(user, "NOPE_INR", buy, price=price, quantity=qty),
            PlaceOrder(user, symbol, sell, price=0, quantity=qty),
            PlaceOrder(user, symbol, sell, price=m.max_ticks + 1, quantity=qty),
            PlaceOrder(user, symbol, buy, price=price, quantity=m.min_lots - 1),
            PlaceOrder(user, symbol, buy, price=price, quantity=m.max_lots + 1),
            PlaceOrder(user, symbol, buy, price=price, quantity=qty, client_order_id="x" * 37),
            PlaceOrder(user, symbol, buy, price=price, quantity=qty, client_order_id=""),
            PlaceOrder(user, symbol, sell, market, price=price, quantity=qty),
            PlaceOrder(user, symbol, sell, market, quote_quantity=100),
            PlaceOrder(user, symbol, buy, market, quantity=qty, quote_quantity=9),
            PlaceOrder(user, symbol, buy, market, quote_quantity=0),
            PlaceOrder(user, symbol, buy, market, quantity=qty, time_in_force=TimeInForce.FOK),
            PlaceOrder(user, symbol, buy, market, quantity=qty, post_only=True),
            PlaceOrder(
                user,
                symbol,
                buy,
                price=price,
                quantity=qty,
                post_only=True,
                time_in_force=TimeInForce.IOC,
            ),
            PlaceOrder(user, symbol, sell, price=price, quantity=qty, trigger_price=0),
            PlaceOrder(user, symbol, sell, market, quantity=qty, trigger_price=m.max_ticks + 1),
            PlaceOrder(
                user, symbol, buy, price=price, quantity=qty, post_only=True, trigger_price=price
            ),
            PlaceOrder(
                user,
                symbol,
                buy,
                price=price,
                quantity=qty,
                time_in_force=TimeInForce.FOK,
                trigger_price=price,
            ),
        ]
        which = data.draw(st.integers(0, len(bad) - 1), label="which")
        assert isinstance(self.run(bad[which]).reply, Rejection)

    def do_cancel(self, data) -> None:
        user = self.user(data)
        symbol = data.draw(st.sampled_from([*self.markets, "NOPE_INR"]), label="market")
        if data.draw(st.booleans(), label="by_client_id"):
            cid = data.draw(st.sampled_from(["a", "b", "c", "zz"]), label="cid")
            self.run(CancelOrder(user, symbol, client_order_id=cid))
        else:
            order_id = data.draw(st.integers(1, self.h.engine.next_order_id), label="order_id")
            self.run(CancelOrder(user, symbol, order_id=order_id))

    def do_cancel_all(self, data) -> None:
        symbol = data.draw(st.sampled_from([None, *self.markets, "NOPE_INR"]), label="market")
        self.run(CancelAll(self.user(data), symbol))

    def do_restore(self, data) -> None:
        """Carry on with an engine restored from a snapshot of this one."""
        before = snapshot.state_hash(self.h.engine)
        restored = snapshot.loads(snapshot.dumps(self.h.engine), CONFIG)
        assert snapshot.state_hash(restored) == before
        self.h.engine = restored
        self.restores += 1

    def do_get_order(self, data) -> None:
        user = self.user(data)
        if data.draw(st.booleans(), label="by_client_id"):
            cid = data.draw(st.sampled_from(["a", "b", "zz"]), label="cid")
            query = GetOrder(user, client_order_id=cid)
        else:
            order_id = data.draw(st.integers(1, self.h.engine.next_order_id), label="order_id")
            query = GetOrder(user, order_id=order_id)
        assert normal(self.h.engine.query(query)) == normal(self.ref.query(query))

    # --- invariants ----------------------------------------------------------------------------

    @invariant()
    def same_state_as_reference(self) -> None:
        engine = self.h.engine
        for user in [*self.users, FEE_ACCOUNT]:
            assert engine.query(GetBalances(user)) == self.ref.query(GetBalances(user))
            assert engine.query(GetOpenOrders(user)) == self.ref.query(GetOpenOrders(user))
        for symbol in self.markets:
            assert engine.query(GetDepth(symbol)) == self.ref.query(GetDepth(symbol))

    @invariant()
    def the_audit_balances(self) -> None:
        """Deposits − withdrawals = what users and the fee account hold, per asset."""
        audit = self.h.engine.query(GetAudit())
        assert audit.seq == self.h.engine.seq
        assert {asset: t.difference for asset, t in audit.assets.items() if t.difference} == {}
        assert all(audit.assets[a].users + audit.assets[a].fees >= 0 for a in audit.assets)

    @invariant()
    def no_waiting_stop_should_have_triggered(self) -> None:
        """No trade since a waiting stop's placement printed at or through its trigger."""
        for user in self.users:
            for view in self.h.engine.query(GetOpenOrders(user)):
                if view.status is not OrderStatus.TRIGGER_PENDING:
                    continue
                placed = self.ref.find(view.order_id)
                for trade in self.ref.trades:
                    if trade.market != view.market or trade.trade_id < placed.first_trade_id_after:
                        continue
                    if placed.rising:
                        assert trade.price < view.trigger_price, "a rising stop was reached"
                    else:
                        assert trade.price > view.trigger_price, "a falling stop was reached"

    @invariant()
    def funds_conserved(self) -> None:
        totals = self.h.engine.ledger.totals()
        for asset in {*totals, *self.net}:
            assert totals.get(asset, 0) == self.net.get(asset, 0), asset

    def teardown(self) -> None:
        """Replaying the log on a fresh engine gives the same bytes and the same state."""
        if not hasattr(self, "log"):
            return
        tally(f"commands: {len(self.log) // 10 * 10}+")
        tally(f"trades: {min(self.ref.next_trade_id - 1, 20) // 5 * 5}+")
        replayed = Engine(CONFIG, closed_order_retention=self.retention)
        for (command, seq, ts), encoded in zip(self.log, self.encoded, strict=True):
            outcome = replayed.apply(command, seq=seq, ts=ts)
            assert [codec.encode(event) for event in outcome.events] == encoded
        assert snapshot.state_hash(replayed) == snapshot.state_hash(self.h.engine)


EngineVersusReference.TestCase.settings = PROFILE
TestEngineVersusReference = EngineVersusReference.TestCase
