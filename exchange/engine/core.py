"""The engine state machine: ``Engine.apply(command) -> Outcome``.

Placing an order reads as its stages, in order:

    validate → deduplicate client id → hold funds → (a stop order waits here) → (post-only / FOK
    checks) → match → settle → rest or expire the remainder → run the stops its trades triggered
    → emit events

The book (:mod:`.book`) knows orders, the ledger (:mod:`.ledger`) knows balances, the pending
stops (:mod:`.stops`) know the orders waiting for a trigger price; this module is the only one
that knows them all. Rejections are values (:class:`~exchange.models.Rejection`), never
exceptions, and a rejected command changes nothing. The engine reads no clock: the sequence number
and timestamp of every command are given to :meth:`Engine.apply`, so replaying the same log gives
the same ids, the same events and the same state.

Closed orders stay queryable (and their client ids deduplicated) until ``closed_order_retention``
newer orders have closed; older ones live on in PostgreSQL.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from exchange.engine.book import Book, Order
from exchange.engine.ledger import Ledger
from exchange.engine.stops import PendingStops
from exchange.errors import ErrorCode
from exchange.markets import Market, MarketConfig
from exchange.models import (
    Balance,
    CancelAll,
    CancelOrder,
    CreateUser,
    Deposit,
    Depth,
    Event,
    Fill,
    FundsTransferred,
    GetAudit,
    GetBalances,
    GetDepth,
    GetOpenOrders,
    GetOrder,
    LedgerAudit,
    OrderStatus,
    OrderType,
    OrderUpdated,
    OrderView,
    Outcome,
    PlaceOrder,
    Rejection,
    Reply,
    SelfTradePrevention,
    Side,
    TimeInForce,
    TradeExecuted,
    Transferred,
    UserCreated,
    Withdraw,
)
from exchange.validation import validate_order, validate_trigger

DEFAULT_CLOSED_ORDER_RETENTION = 200_000

# Enum members as module constants: on Python 3.11 each ``Enum.MEMBER`` lookup costs ~50 ns,
# and placing an order would do a dozen of them.
BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET
GTC, FOK = TimeInForce.GTC, TimeInForce.FOK
NEW, PARTIALLY_FILLED, FILLED = OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED
CANCELLED, EXPIRED, REJECTED = OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.REJECTED
TRIGGER_PENDING = OrderStatus.TRIGGER_PENDING
_CANCELS_MAKER = (SelfTradePrevention.CANCEL_MAKER, SelfTradePrevention.CANCEL_BOTH)
_CANCELS_TAKER = (SelfTradePrevention.CANCEL_TAKER, SelfTradePrevention.CANCEL_BOTH)


def reject(code: ErrorCode, message: str) -> Outcome:
    return Outcome(Rejection(code, message))


class Engine:
    """Every order book and balance of the exchange, changed only by :meth:`apply`."""

    def __init__(
        self, config: MarketConfig, *, closed_order_retention: int = DEFAULT_CLOSED_ORDER_RETENTION
    ) -> None:
        self.config = config
        self.closed_order_retention = closed_order_retention
        self.books = {symbol: Book(symbol) for symbol in config.markets}
        self.stops = {symbol: PendingStops() for symbol in config.markets}
        # Stops triggered by the command being applied, in the order they run (see .stops).
        self._triggered: deque[Order] = deque()
        self.ledger = Ledger()
        self.orders: dict[int, Order] = {}
        self.open_orders: dict[str, dict[int, Order]] = {}
        self.client_ids: dict[tuple[str, str], int] = {}
        self.closed: deque[int] = deque()
        self.next_order_id = 1
        self.next_trade_id = 1
        self.next_user_id = 1  # the lowest id CreateUser may hand out next
        self.seq = 0
        self.moved_seq = 0  # the last command that moved funds (a transfer or a trade)
        self.now = 0
        self._handlers: dict[type, Callable[..., Outcome]] = {
            PlaceOrder: self._place,
            CancelOrder: self._cancel,
            CancelAll: self._cancel_all,
            Deposit: self._deposit,
            Withdraw: self._withdraw,
            CreateUser: self._create_user,
        }
        self._queries: dict[type, Callable[..., Reply]] = {
            GetDepth: self._depth,
            GetOpenOrders: self._open_orders,
            GetOrder: self._order,
            GetBalances: self._balances,
            GetAudit: self._audit,
        }

    # --- entry points --------------------------------------------------------------------------

    def apply(self, command: object, *, seq: int, ts: int) -> Outcome:
        """Apply one state-changing command; ``seq`` and ``ts`` (ms) come from the log."""
        self.seq = seq
        self.now = ts
        return self._handlers[type(command)](command)

    def query(self, query: object) -> Reply:
        """Answer a read-only query from the current state."""
        return self._queries[type(query)](query)

    # --- placing -------------------------------------------------------------------------------

    def _place(self, cmd: PlaceOrder) -> Outcome:
        market = self.config.markets.get(cmd.market)
        if market is None:
            return reject(ErrorCode.INVALID_MARKET, f"unknown market {cmd.market!r}")
        rejection = validate_order(cmd, market)
        if rejection is None and cmd.trigger_price is not None:
            rejection = validate_trigger(cmd, market) or self.stops[market.symbol].refuse(
                cmd.trigger_price
            )
        if rejection is not None:
            return Outcome(rejection)
        if cmd.client_order_id is not None:
            original = self.client_ids.get((cmd.user_id, cmd.client_order_id))
            if original is not None:
                return Outcome(self.orders[original].view(with_fills=True))

        # Hold funds: what the order may spend, in the asset it spends.
        if cmd.side is BUY:
            asset = market.quote.name
            if cmd.type is LIMIT:
                hold = market.quote_units(cmd.price, cmd.quantity)
            elif cmd.quote_quantity is not None:
                hold = cmd.quote_quantity
            elif cmd.trigger_price is not None:
                hold = 0  # a stop market buy by quantity spends what is available when it runs
            else:  # a market buy by quantity may spend whatever quote is available
                hold = self.ledger.available(cmd.user_id, asset)
        else:
            asset = market.base.name
            hold = market.base_units(cmd.quantity)
        available = self.ledger.available(cmd.user_id, asset)
        if available < hold or (hold <= 0 and cmd.trigger_price is None):
            return reject(ErrorCode.INSUFFICIENT_FUNDS, f"not enough {asset} available")

        order = self._new_order(cmd)
        if cmd.trigger_price is not None:
            return self._wait_for_trigger(market, order, asset, hold)
        book = self.books[market.symbol]
        if cmd.post_only and self._would_take(book, order):
            return self._close_unfilled(order, REJECTED)
        if cmd.time_in_force is FOK and self._fillable(book, order) < order.remaining:
            return self._close_unfilled(order, EXPIRED)

        self.ledger.hold(order.user_id, asset, hold)
        order.locked = hold
        events: list[Event] = []
        # The reply and the taker's event share one view (fills included) to build it once.
        view = self._execute(market, book, order, asset, events)
        events.append(OrderUpdated(view))
        if self._triggered:
            self._run_triggered(events)
        events.extend(self.ledger.take_changes())
        depth = book.take_depth_change(self.now)
        if depth is not None:
            events.append(depth)
        return Outcome(view, events)

    def _execute(
        self, market: Market, book: Book, order: Order, asset: str, events: list[Event]
    ) -> OrderView:
        """Match an order whose funds are held, rest or close it, and emit the makers' events.

        Returns the order's view (with fills) for the caller to emit: a placement replies with
        it, a triggered stop emits it only if matching changed the order.
        """
        makers: dict[int, Order] = {}
        stopped_by_stp, out_of_funds = self._match(market, book, order, events, makers)

        # Rest or expire the remainder.
        if stopped_by_stp:
            order.status = EXPIRED
        elif order.quote_quantity is not None:
            # A buy by quote amount is done once its leftover cannot buy another lot.
            # Spending the whole amount is done too, even when the book ran out with it.
            order.status = (
                FILLED
                if (out_of_funds or order.locked == 0) and order.executed_quantity
                else EXPIRED
            )
        elif order.remaining == 0:
            order.status = FILLED
        elif order.type is LIMIT and order.time_in_force is GTC:
            order.status = PARTIALLY_FILLED if order.executed_quantity else NEW
        else:
            order.status = EXPIRED
        if order.status is NEW or order.status is PARTIALLY_FILLED:
            book.add(order)
            self.open_orders.setdefault(order.user_id, {})[order.order_id] = order
        else:
            self.ledger.release(order.user_id, asset, order.locked)
            order.locked = 0
            self._retire(order)
        for maker in makers.values():
            events.append(OrderUpdated(maker.view()))
        return order.view(with_fills=True)

    # --- stop orders ---------------------------------------------------------------------------

    def _wait_for_trigger(self, market: Market, order: Order, asset: str, hold: int) -> Outcome:
        """Hold a stop order's funds and let it wait for its trigger price, off the book."""
        if hold:
            self.ledger.hold(order.user_id, asset, hold)
            order.locked = hold
        order.status = TRIGGER_PENDING
        self.stops[market.symbol].add(order)
        self.open_orders.setdefault(order.user_id, {})[order.order_id] = order
        view = order.view(with_fills=True)
        return Outcome(view, [OrderUpdated(view), *self.ledger.take_changes()])

    def _run_triggered(self, events: list[Event]) -> None:
        """Run the triggered stops, and those their trades trigger, as ordinary orders."""
        triggered = self._triggered
        while triggered:
            order = triggered.popleft()
            market = self.config.markets[order.market]
            order.status = NEW
            order.triggered_at = order.updated_at = self.now
            if order.side is BUY:
                asset = market.quote.name
                if order.type is MARKET and order.quote_quantity is None:
                    hold = self.ledger.available(order.user_id, asset)
                    if hold <= 0:  # what Backpack calls TriggerFailed
                        order.status = REJECTED
                        order.remaining = 0
                        self._retire(order)
                        events.append(OrderUpdated(order.view()))
                        continue
                    self.ledger.hold(order.user_id, asset, hold)
                    order.locked = hold
            else:
                asset = market.base.name
            triggered_view = order.view()
            events.append(OrderUpdated(triggered_view))
            view = self._execute(market, self.books[order.market], order, asset, events)
            if view != triggered_view:
                events.append(OrderUpdated(view))

    def _new_order(self, cmd: PlaceOrder) -> Order:
        order = Order(
            order_id=self.next_order_id,
            user_id=cmd.user_id,
            client_order_id=cmd.client_order_id,
            market=cmd.market,
            side=cmd.side,
            type=cmd.type,
            price=cmd.price,
            quantity=cmd.quantity,
            quote_quantity=cmd.quote_quantity,
            time_in_force=cmd.time_in_force,
            post_only=cmd.post_only,
            self_trade_prevention=cmd.self_trade_prevention,
            trigger_price=cmd.trigger_price,
            created_at=self.now,
            updated_at=self.now,
            # A buy by quote amount wants "as many lots as the money buys".
            remaining=cmd.quantity if cmd.quantity is not None else 1 << 62,
        )
        self.next_order_id += 1
        self.orders[order.order_id] = order
        if order.client_order_id is not None:
            self.client_ids[(order.user_id, order.client_order_id)] = order.order_id
        return order

    def _close_unfilled(self, order: Order, status: OrderStatus) -> Outcome:
        """Close an order that never held funds nor touched the book."""
        order.status = status
        order.remaining = 0
        self._retire(order)
        return Outcome(order.view(with_fills=True), [OrderUpdated(order.view())])

    @staticmethod
    def _crosses(side: Side, limit: int | None, price: int) -> bool:
        if limit is None:
            return True
        return price <= limit if side is BUY else price >= limit

    def _would_take(self, book: Book, order: Order) -> bool:
        best = book.best_price(order.side.opposite)
        return best is not None and self._crosses(order.side, order.price, best)

    def _fillable(self, book: Book, order: Order) -> int:
        """Lots ``order`` could take right now, stopping where self-trade prevention would."""
        fillable = 0
        for price in book.prices_from_best(order.side.opposite):
            if not self._crosses(order.side, order.price, price):
                break
            for maker in book.level(order.side.opposite, price).values():
                if maker.user_id == order.user_id:
                    if order.self_trade_prevention in _CANCELS_TAKER:
                        return fillable
                    continue
                fillable += maker.remaining
                if fillable >= order.remaining:
                    return fillable
        return fillable

    def _match(
        self,
        market: Market,
        book: Book,
        taker: Order,
        events: list[Event],
        makers: dict[int, Order],
    ) -> tuple[bool, bool]:
        """Trade ``taker`` against the book in price-time priority at the makers' prices.

        Returns ``(stopped_by_self_trade_prevention, out_of_funds)``; the latter is set when a
        market buy's remaining budget cannot pay for one more lot at the next price.
        """
        side = taker.side
        opposite = side.opposite
        spends_budget = taker.type is MARKET and side is BUY
        while taker.remaining:
            price = book.best_price(opposite)
            if price is None or not self._crosses(side, taker.price, price):
                break
            unit_cost = market.quote_units(price, 1)
            level = book.level(opposite, price)
            while level and taker.remaining:
                # Before self-trade prevention looks at the maker: a buyer that cannot pay for
                # one lot here is done, whichever maker is next (else the outcome would depend
                # on whether the own order is first at a price or behind another).
                if spends_budget and taker.locked < unit_cost:
                    return False, True
                maker = next(iter(level.values()))
                if maker.user_id == taker.user_id:
                    stp = taker.self_trade_prevention
                    if stp in _CANCELS_MAKER:
                        self._expire_resting(market, book, maker)
                        makers[maker.order_id] = maker
                    if stp in _CANCELS_TAKER:
                        return True, False
                    continue
                lots = min(taker.remaining, maker.remaining)
                if spends_budget:
                    lots = min(lots, taker.locked // unit_cost)
                self._trade(market, book, taker, maker, price, lots, events)
                makers[maker.order_id] = maker
        return False, False

    def _trade(
        self,
        market: Market,
        book: Book,
        taker: Order,
        maker: Order,
        price: int,
        lots: int,
        events: list[Event],
    ) -> None:
        """Execute ``lots`` at ``price`` and settle both sides."""
        quote = market.quote_units(price, lots)
        base = market.base_units(lots)
        if taker.side is BUY:
            buyer, seller = taker, maker
            buyer_fee_bps, seller_fee_bps = market.taker_fee_bps, market.maker_fee_bps
        else:
            buyer, seller = maker, taker
            buyer_fee_bps, seller_fee_bps = market.maker_fee_bps, market.taker_fee_bps
        # A limit buy locked its own price; trading lower returns the difference.
        buyer_unlock = quote if buyer.type is MARKET else market.quote_units(buyer.price, lots)
        seller_fee = quote * seller_fee_bps // 10_000
        buyer_fee = base * buyer_fee_bps // 10_000
        ledger = self.ledger
        ledger.pay(
            buyer.user_id,
            market.quote.name,
            buyer_unlock,
            quote,
            seller.user_id,
            seller_fee,
        )
        ledger.pay(
            seller.user_id,
            market.base.name,
            base,
            base,
            buyer.user_id,
            buyer_fee,
        )
        self.moved_seq = self.seq
        buyer.locked -= buyer_unlock
        seller.locked -= base

        book.reduce(maker, lots)
        taker.remaining -= lots
        trade_id = self.next_trade_id
        self.next_trade_id += 1
        now = self.now
        fill = Fill(trade_id, price, lots)
        for order in (taker, maker):
            order.executed_quantity += lots
            order.executed_quote_quantity += quote
            order.updated_at = now
            order.fills.append(fill)
        if maker.remaining == 0:
            maker.status = FILLED
            self._retire(maker)
        else:
            maker.status = PARTIALLY_FILLED
        stops = self.stops[market.symbol]
        stops.last_price = price
        if price >= stops.rise_at or price <= stops.fall_at:
            self._triggered.extend(stops.take_triggered(price))
        events.append(
            TradeExecuted(
                trade_id,
                market.symbol,
                price,
                lots,
                quote,
                taker.side,
                buyer.order_id,
                seller.order_id,
                buyer.user_id,
                seller.user_id,
                now,
                buyer_fee,
                seller_fee,
            )
        )

    # --- cancelling ----------------------------------------------------------------------------

    def _locked_asset(self, market: Market, order: Order) -> str:
        return market.quote.name if order.side is BUY else market.base.name

    def _expire_resting(self, market: Market, book: Book, order: Order) -> None:
        self._take_off_book(market, book, order, EXPIRED)

    def _take_off_book(self, market: Market, book: Book, order: Order, status: OrderStatus) -> None:
        if order.status is TRIGGER_PENDING:
            self.stops[market.symbol].remove(order)
        else:
            book.remove(order)
        self.ledger.release(order.user_id, self._locked_asset(market, order), order.locked)
        order.locked = 0
        order.status = status
        order.updated_at = self.now
        self._retire(order)

    def _find_open(
        self, user_id: str, order_id: int | None, client_order_id: str | None
    ) -> Order | None:
        if order_id is None and client_order_id is not None:
            order_id = self.client_ids.get((user_id, client_order_id))
        if order_id is None:
            return None
        return self.open_orders.get(user_id, {}).get(order_id)

    def _cancel(self, cmd: CancelOrder) -> Outcome:
        order = self._find_open(cmd.user_id, cmd.order_id, cmd.client_order_id)
        if order is None or order.market != cmd.market:
            return reject(ErrorCode.ORDER_NOT_FOUND, "no such open order")
        market = self.config.markets[order.market]
        book = self.books[order.market]
        self._take_off_book(market, book, order, CANCELLED)
        events: list[Event] = [OrderUpdated(order.view())]
        events.extend(self.ledger.take_changes())
        depth = book.take_depth_change(self.now)  # (none for a stop that was waiting)
        if depth is not None:
            events.append(depth)
        return Outcome(order.view(with_fills=True), events)

    def _cancel_all(self, cmd: CancelAll) -> Outcome:
        if cmd.market is not None and cmd.market not in self.config.markets:
            return reject(ErrorCode.INVALID_MARKET, f"unknown market {cmd.market!r}")
        chosen = [
            order
            for order in self.open_orders.get(cmd.user_id, {}).values()
            if cmd.market is None or order.market == cmd.market
        ]
        events: list[Event] = []
        for order in chosen:
            self._take_off_book(
                self.config.markets[order.market],
                self.books[order.market],
                order,
                CANCELLED,
            )
            events.append(OrderUpdated(order.view()))
        events.extend(self.ledger.take_changes())
        for symbol in sorted({order.market for order in chosen}):
            depth = self.books[symbol].take_depth_change(self.now)
            if depth is not None:
                events.append(depth)
        return Outcome([order.view(with_fills=True) for order in chosen], events)

    def _retire(self, order: Order) -> None:
        """An order closed: forget it as open and, past the retention, forget it entirely."""
        open_orders = self.open_orders.get(order.user_id)
        if (
            open_orders is not None
            and open_orders.pop(order.order_id, None) is not None
            and not open_orders
        ):
            del self.open_orders[order.user_id]
        self.closed.append(order.order_id)
        while len(self.closed) > self.closed_order_retention:
            old = self.orders.pop(self.closed.popleft())
            if old.client_order_id is not None:
                self.client_ids.pop((old.user_id, old.client_order_id), None)

    # --- funds ---------------------------------------------------------------------------------

    def _check_transfer(self, asset: str, amount: int) -> Outcome | None:
        if asset not in self.config.assets:
            return reject(ErrorCode.INVALID_ASSET, f"unknown asset {asset!r}")
        if amount <= 0:
            return reject(ErrorCode.INVALID_AMOUNT, "amount must be positive")
        return None

    def _deposit(self, cmd: Deposit) -> Outcome:
        refused = self._check_transfer(cmd.asset, cmd.amount)
        if refused:
            return refused
        self.ledger.deposit(cmd.user_id, cmd.asset, cmd.amount)
        return self._transferred(cmd.user_id, cmd.asset, cmd.amount)

    def _withdraw(self, cmd: Withdraw) -> Outcome:
        refused = self._check_transfer(cmd.asset, cmd.amount)
        if refused:
            return refused
        if not self.ledger.withdraw(cmd.user_id, cmd.asset, cmd.amount):
            return reject(ErrorCode.INSUFFICIENT_FUNDS, f"not enough {cmd.asset} available")
        return self._transferred(cmd.user_id, cmd.asset, -cmd.amount)

    def _transferred(self, user_id: str, asset: str, amount: int) -> Outcome:
        """A transfer's id is its command's sequence number: unique, and the same on replay."""
        self.moved_seq = self.seq
        moved = FundsTransferred(self.seq, user_id, asset, amount, self.now)
        return Outcome(
            Transferred(self.seq, self._balances(GetBalances(user_id))),
            [moved, *self.ledger.take_changes()],
        )

    # --- users ---------------------------------------------------------------------------------

    def _create_user(self, cmd: CreateUser) -> Outcome:
        """The next numeric id above every id handed out and ``cmd.above`` that no user has
        used: every user who held a balance or an order (even one named freely in dev mode)
        is in the ledger, which forgets no one."""
        candidate = max(self.next_user_id, cmd.above + 1)
        known = self.ledger.balances
        while str(candidate) in known:
            candidate += 1
        self.next_user_id = candidate + 1
        return Outcome(UserCreated(str(candidate)))

    # --- queries -------------------------------------------------------------------------------

    def _depth(self, query: GetDepth) -> Depth | Rejection:
        book = self.books.get(query.market)
        if book is None:
            return Rejection(ErrorCode.INVALID_MARKET, f"unknown market {query.market!r}")
        return Depth(
            query.market,
            tuple(book.levels(BUY, query.limit)),
            tuple(book.levels(SELL, query.limit)),
            book.update_id,
            self.now,
        )

    def _open_orders(self, query: GetOpenOrders) -> list[OrderView] | Rejection:
        if query.market is not None and query.market not in self.config.markets:
            return Rejection(ErrorCode.INVALID_MARKET, f"unknown market {query.market!r}")
        return [
            order.view(with_fills=True)
            for order in self.open_orders.get(query.user_id, {}).values()
            if query.market is None or order.market == query.market
        ]

    def _order(self, query: GetOrder) -> OrderView | Rejection:
        order_id = query.order_id
        if order_id is None and query.client_order_id is not None:
            order_id = self.client_ids.get((query.user_id, query.client_order_id))
        order = self.orders.get(order_id) if order_id is not None else None
        if order is None or order.user_id != query.user_id:
            return Rejection(ErrorCode.ORDER_NOT_FOUND, "no such order")
        return order.view(with_fills=True)

    def _audit(self, _query: GetAudit) -> LedgerAudit:
        return LedgerAudit(self.seq, self.moved_seq, self.ledger.audit(list(self.config.assets)))

    def _balances(self, query: GetBalances) -> dict[str, Balance]:
        return {asset: self.ledger.balance(query.user_id, asset) for asset in self.config.assets}
