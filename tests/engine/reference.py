"""A naive reference exchange: the contract's order semantics, written to be obviously right.

Everything is lists and linear scans, recomputed from scratch: the book is "the open orders of
this market and side, sorted by (best price, order id)", depth is an aggregation of those, and a
market's update id advances by the number of levels whose total differs before and after a
command. It shares no code with :mod:`exchange.engine` beyond the records and market arithmetic
(:meth:`Market.quote_units` / :meth:`Market.base_units`), so the property tests compare two
independent implementations.

Stop orders are orders with status ``trigger_pending`` that the book leaves out; after every
trade, a scan of all of them finds those it reached (a trigger above the last price at placement
by a trade at or above it, one below by a trade at or below it), in the order the price reached
them, and queues them to run after the command as ordinary orders, cascades included. Time
priority in a book is the order in which orders entered it (a stop: once triggered).

Choices the contract leaves open follow the engine's documented ones: a market buy that cannot
pay for one more lot at the next maker's price stops *before* self-trade prevention looks at that
maker; a buy by ``quote_quantity`` that spent anything and stopped for lack of money (or spent it
all) is ``filled``, otherwise ``expired``; a stop market buy by quantity is accepted whatever the
caller holds and, triggered with no quote available, ends ``rejected``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from exchange.errors import ErrorCode
from exchange.markets import Market, MarketConfig
from exchange.models import (
    Balance,
    CancelAll,
    CancelOrder,
    Deposit,
    Depth,
    Fill,
    GetBalances,
    GetDepth,
    GetOpenOrders,
    GetOrder,
    OrderStatus,
    OrderType,
    OrderView,
    PlaceOrder,
    Rejection,
    SelfTradePrevention,
    Side,
    TimeInForce,
    TradeExecuted,
    Withdraw,
)

FEE_ACCOUNT = "exchange:fees"
BUY, SELL = Side.BUY, Side.SELL
CANCELS_MAKER = (SelfTradePrevention.CANCEL_MAKER, SelfTradePrevention.CANCEL_BOTH)
CANCELS_TAKER = (SelfTradePrevention.CANCEL_TAKER, SelfTradePrevention.CANCEL_BOTH)


@dataclass
class RefOrder:
    order_id: int
    user_id: str
    client_order_id: str | None
    market: str
    side: Side
    type: OrderType
    price: int | None
    quantity: int | None
    quote_quantity: int | None
    time_in_force: TimeInForce
    post_only: bool
    stp: SelfTradePrevention
    created_at: int
    updated_at: int
    trigger_price: int | None = None
    # A stop: the market's last trade price and next trade id when it was placed.
    last_price_at_placement: int | None = None
    first_trade_id_after: int = 0
    triggered_at: int | None = None
    entered_book: int | None = None  # time priority: when it first rested (a stop: once triggered)
    locked: int = 0
    executed: int = 0
    executed_quote: int = 0
    status: OrderStatus = OrderStatus.NEW
    fills: list[Fill] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        """Lots still wanted (a buy by quote amount wants without limit)."""
        if self.quantity is None:
            return 1 << 80
        return self.quantity - self.executed

    def view(self) -> OrderView:
        return OrderView(
            self.order_id,
            self.user_id,
            self.client_order_id,
            self.market,
            self.side,
            self.type,
            self.price,
            self.quantity,
            self.quote_quantity,
            self.executed,
            self.executed_quote,
            self.status,
            self.time_in_force,
            self.post_only,
            self.stp,
            self.created_at,
            self.updated_at,
            tuple(self.fills),
            self.trigger_price,
            self.triggered_at,
        )

    @property
    def rising(self) -> bool:
        """A stop waiting for a trade at or above its trigger (else at or below)."""
        return self.trigger_price > self.last_price_at_placement


@dataclass
class RefOutcome:
    reply: object
    trades: list[TradeExecuted] = field(default_factory=list)
    # market -> (first_update_id, last_update_id, bids, asks) of the levels that changed
    depth: dict[str, tuple[int, int, tuple, tuple]] = field(default_factory=dict)


def rejection(code: ErrorCode) -> Rejection:
    return Rejection(code, "")


class Reference:
    def __init__(self, config: MarketConfig, closed_order_retention: int) -> None:
        self.config = config
        self.retention = closed_order_retention
        self.balances: dict[tuple[str, str], list[int]] = {}
        self.orders: list[RefOrder] = []  # every order still remembered
        self.closed: list[int] = []  # ids in the order they closed
        self.update_ids = dict.fromkeys(config.markets, 0)
        self.last_price: dict[str, int | None] = dict.fromkeys(config.markets)
        self.trades: list[TradeExecuted] = []  # every trade ever
        self.triggered: list[RefOrder] = []  # stops to run before the command ends
        self.next_order_id = 1
        self.next_trade_id = 1
        self.next_entry = 1  # counts orders entering a book
        self.now = 0

    # --- state reading ---------------------------------------------------------------------

    def bal(self, user: str, asset: str) -> list[int]:
        return self.balances.setdefault((user, asset), [0, 0])

    def open_orders(self) -> list[RefOrder]:
        return [o for o in self.orders if o.status.is_open]

    def find(self, order_id: int) -> RefOrder | None:
        for order in self.orders:
            if order.order_id == order_id:
                return order
        return None

    def find_client(self, user: str, client_order_id: str) -> RefOrder | None:
        for order in self.orders:
            if order.user_id == user and order.client_order_id == client_order_id:
                return order
        return None

    def pending_stops(self) -> list[RefOrder]:
        return [o for o in self.orders if o.status is OrderStatus.TRIGGER_PENDING]

    def queue(self, market: str, side: Side) -> list[RefOrder]:
        """Resting orders of one side, best price first, then oldest first."""
        orders = [
            o
            for o in self.open_orders()
            if o.market == market and o.side is side and o.status is not OrderStatus.TRIGGER_PENDING
        ]
        sign = -1 if side is BUY else 1
        return sorted(orders, key=lambda o: (sign * o.price, o.entered_book))

    def levels(self, market: str, side: Side) -> list[tuple[int, int]]:
        totals: dict[int, int] = {}
        for order in self.queue(market, side):
            totals[order.price] = totals.get(order.price, 0) + order.remaining
        return list(totals.items())

    # --- entry points ----------------------------------------------------------------------

    def apply(self, cmd: object, *, ts: int) -> RefOutcome:
        self.now = ts
        before = {m: (self.levels(m, BUY), self.levels(m, SELL)) for m in self.config.markets}
        handler = {
            PlaceOrder: self.place,
            CancelOrder: self.cancel,
            CancelAll: self.cancel_all,
            Deposit: self.deposit,
            Withdraw: self.withdraw,
        }[type(cmd)]
        out = handler(cmd)
        for market, (bids_before, asks_before) in before.items():
            bids = _diff(dict(bids_before), dict(self.levels(market, BUY)))
            asks = _diff(dict(asks_before), dict(self.levels(market, SELL)))
            if bids or asks:
                first = self.update_ids[market] + 1
                self.update_ids[market] += len(bids) + len(asks)
                out.depth[market] = (
                    first,
                    self.update_ids[market],
                    tuple(sorted(bids, reverse=True)),
                    tuple(sorted(asks)),
                )
        return out

    def query(self, q: object) -> object:
        if isinstance(q, GetBalances):
            return {a: Balance(*self.bal(q.user_id, a)) for a in self.config.assets}
        if isinstance(q, GetOpenOrders):
            if q.market is not None and q.market not in self.config.markets:
                return rejection(ErrorCode.INVALID_MARKET)
            return [
                o.view()
                for o in self.open_orders()
                if o.user_id == q.user_id and q.market in (None, o.market)
            ]
        if isinstance(q, GetOrder):
            order = None
            if q.order_id is not None:
                order = self.find(q.order_id)
            elif q.client_order_id is not None:
                order = self.find_client(q.user_id, q.client_order_id)
            if order is None or order.user_id != q.user_id:
                return rejection(ErrorCode.ORDER_NOT_FOUND)
            return order.view()
        if isinstance(q, GetDepth):
            if q.market not in self.config.markets:
                return rejection(ErrorCode.INVALID_MARKET)
            bids, asks = self.levels(q.market, BUY), self.levels(q.market, SELL)
            if q.limit is not None:
                bids, asks = bids[: q.limit], asks[: q.limit]
            return Depth(q.market, tuple(bids), tuple(asks), self.update_ids[q.market], self.now)
        raise TypeError(q)

    # --- funds -----------------------------------------------------------------------------

    def _transfer_check(self, cmd: Deposit | Withdraw) -> Rejection | None:
        if cmd.asset not in self.config.assets:
            return rejection(ErrorCode.INVALID_ASSET)
        if cmd.amount <= 0:
            return rejection(ErrorCode.INVALID_AMOUNT)
        return None

    def deposit(self, cmd: Deposit) -> RefOutcome:
        refused = self._transfer_check(cmd)
        if refused:
            return RefOutcome(refused)
        self.bal(cmd.user_id, cmd.asset)[0] += cmd.amount
        return RefOutcome(self.query(GetBalances(cmd.user_id)))

    def withdraw(self, cmd: Withdraw) -> RefOutcome:
        refused = self._transfer_check(cmd)
        if refused:
            return RefOutcome(refused)
        if self.bal(cmd.user_id, cmd.asset)[0] < cmd.amount:
            return RefOutcome(rejection(ErrorCode.INSUFFICIENT_FUNDS))
        self.bal(cmd.user_id, cmd.asset)[0] -= cmd.amount
        return RefOutcome(self.query(GetBalances(cmd.user_id)))

    # --- placing ---------------------------------------------------------------------------

    def validate(self, cmd: PlaceOrder, m: Market) -> ErrorCode | None:
        """The contract's checks, in the engine's order (first failure wins)."""
        if cmd.type is OrderType.LIMIT:
            if cmd.price is None or cmd.price <= 0 or cmd.price > m.max_ticks:
                return ErrorCode.INVALID_PRICE
            if cmd.quote_quantity is not None:
                return ErrorCode.INVALID_ORDER
        else:
            if cmd.price is not None:
                return ErrorCode.INVALID_PRICE
            if cmd.post_only or cmd.time_in_force is TimeInForce.FOK:
                return ErrorCode.INVALID_ORDER
            if cmd.quote_quantity is not None:
                if cmd.side is SELL or cmd.quantity is not None or cmd.quote_quantity <= 0:
                    return ErrorCode.INVALID_QUANTITY
                return self._validate_cid(cmd)
        if cmd.quantity is None or not m.min_lots <= cmd.quantity <= m.max_lots:
            return ErrorCode.INVALID_QUANTITY
        if cmd.post_only and cmd.time_in_force is not TimeInForce.GTC:
            return ErrorCode.INVALID_ORDER
        return self._validate_cid(cmd)

    def validate_trigger(self, cmd: PlaceOrder, m: Market) -> ErrorCode | None:
        if cmd.post_only or cmd.time_in_force is TimeInForce.FOK:
            return ErrorCode.INVALID_ORDER
        if not 0 < cmd.trigger_price <= m.max_ticks:
            return ErrorCode.INVALID_PRICE
        if self.last_price[m.symbol] in (None, cmd.trigger_price):
            return ErrorCode.INVALID_PRICE
        return None

    @staticmethod
    def _validate_cid(cmd: PlaceOrder) -> ErrorCode | None:
        cid = cmd.client_order_id
        if cid is not None and not 1 <= len(cid) <= 36:
            return ErrorCode.INVALID_CLIENT_ORDER_ID
        return None

    def place(self, cmd: PlaceOrder) -> RefOutcome:
        m = self.config.markets.get(cmd.market)
        if m is None:
            return RefOutcome(rejection(ErrorCode.INVALID_MARKET))
        code = self.validate(cmd, m)
        if code is None and cmd.trigger_price is not None:
            code = self.validate_trigger(cmd, m)
        if code is not None:
            return RefOutcome(rejection(code))
        if cmd.client_order_id is not None:
            original = self.find_client(cmd.user_id, cmd.client_order_id)
            if original is not None:
                return RefOutcome(original.view())

        spend = m.quote.name if cmd.side is BUY else m.base.name
        available = self.bal(cmd.user_id, spend)[0]
        if cmd.side is SELL:
            need = m.base_units(cmd.quantity)
        elif cmd.type is OrderType.LIMIT:
            need = m.quote_units(cmd.price, cmd.quantity)
        elif cmd.quote_quantity is not None:
            need = cmd.quote_quantity
        elif cmd.trigger_price is not None:
            need = 0  # a stop market buy by quantity locks nothing
        else:
            need = available  # a market buy by quantity may use all it has, but needs some
        if available < need or (need <= 0 and cmd.trigger_price is None):
            return RefOutcome(rejection(ErrorCode.INSUFFICIENT_FUNDS))

        order = RefOrder(
            self.next_order_id,
            cmd.user_id,
            cmd.client_order_id,
            cmd.market,
            cmd.side,
            cmd.type,
            cmd.price,
            cmd.quantity,
            cmd.quote_quantity,
            cmd.time_in_force,
            cmd.post_only,
            cmd.self_trade_prevention,
            self.now,
            self.now,
            cmd.trigger_price,
            self.last_price[cmd.market],
            self.next_trade_id,
        )
        self.next_order_id += 1
        self.orders.append(order)
        out = RefOutcome(None)
        if cmd.trigger_price is not None:
            self._lock(order, need)
            order.status = OrderStatus.TRIGGER_PENDING
            out.reply = order.view()
            return out

        crossing = [o for o in self.queue(m.symbol, cmd.side.opposite) if self._crosses(order, o)]
        if cmd.post_only and crossing:
            return self._finish_unfilled(order, OrderStatus.REJECTED, out)
        if cmd.time_in_force is TimeInForce.FOK:
            fillable = 0
            for maker in crossing:
                if maker.user_id == order.user_id:
                    if order.stp in CANCELS_TAKER:
                        break
                    continue
                fillable += maker.remaining
            if fillable < order.quantity:
                return self._finish_unfilled(order, OrderStatus.EXPIRED, out)

        self._lock(order, need)
        self._execute(m, order, out)
        out.reply = order.view()
        while self.triggered:
            self._run_triggered(m, self.triggered.pop(0), out)
        return out

    def _lock(self, order: RefOrder, amount: int) -> None:
        m = self.config.markets[order.market]
        entry = self.bal(order.user_id, m.quote.name if order.side is BUY else m.base.name)
        entry[0] -= amount
        entry[1] += amount
        order.locked = amount

    def _run_triggered(self, m: Market, order: RefOrder, out: RefOutcome) -> None:
        order.status = OrderStatus.NEW
        order.triggered_at = order.updated_at = self.now
        if order.side is BUY and order.type is OrderType.MARKET and order.quantity is not None:
            available = self.bal(order.user_id, m.quote.name)[0]
            if available <= 0:
                order.status = OrderStatus.REJECTED
                self._closed(order)
                return
            self._lock(order, available)
        self._execute(m, order, out)

    def _execute(self, m: Market, order: RefOrder, out: RefOutcome) -> None:
        """Match an order whose funds are locked; rest it or close it."""
        stopped_by_stp = out_of_money = False
        budget = order.type is OrderType.MARKET and order.side is BUY
        while order.remaining > 0:
            queue = [
                o for o in self.queue(m.symbol, order.side.opposite) if self._crosses(order, o)
            ]
            if not queue:
                break
            maker = queue[0]
            unit = m.quote_units(maker.price, 1)
            if budget and order.locked < unit:
                out_of_money = True
                break
            if maker.user_id == order.user_id:
                if order.stp in CANCELS_MAKER:
                    self._close_resting(maker, OrderStatus.EXPIRED)
                if order.stp in CANCELS_TAKER:
                    stopped_by_stp = True
                    break
                continue
            lots = min(order.remaining, maker.remaining)
            if budget:
                lots = min(lots, order.locked // unit)
            self._trade(m, order, maker, lots, out)

        if stopped_by_stp:
            status = OrderStatus.EXPIRED
        elif order.quote_quantity is not None:
            spent_all = out_of_money or order.locked == 0
            status = OrderStatus.FILLED if spent_all and order.executed else OrderStatus.EXPIRED
        elif order.remaining == 0:
            status = OrderStatus.FILLED
        elif order.type is OrderType.LIMIT and order.time_in_force is TimeInForce.GTC:
            status = OrderStatus.PARTIALLY_FILLED if order.executed else OrderStatus.NEW
        else:
            status = OrderStatus.EXPIRED
        order.status = status
        if status.is_open:
            order.entered_book = self.next_entry
            self.next_entry += 1
        else:
            self._unlock(order)
            self._closed(order)

    @staticmethod
    def _crosses(taker: RefOrder, maker: RefOrder) -> bool:
        if taker.price is None:
            return True
        return maker.price <= taker.price if taker.side is BUY else maker.price >= taker.price

    def _finish_unfilled(self, order: RefOrder, status: OrderStatus, out: RefOutcome) -> RefOutcome:
        order.status = status
        self._closed(order)
        out.reply = order.view()
        return out

    def _trade(self, m: Market, taker: RefOrder, maker: RefOrder, lots: int, out: RefOutcome):
        price = maker.price
        quote = m.quote_units(price, lots)
        base = m.base_units(lots)
        buyer, seller = (taker, maker) if taker.side is BUY else (maker, taker)
        buyer_fee = base * (m.taker_fee_bps if buyer is taker else m.maker_fee_bps) // 10_000
        seller_fee = quote * (m.taker_fee_bps if seller is taker else m.maker_fee_bps) // 10_000
        # The buyer's lock: a limit buy locked its own price for these lots; a market buy its
        # budget, of which it spends exactly the trade's quote.
        released = quote if buyer.type is OrderType.MARKET else m.quote_units(buyer.price, lots)
        qb = self.bal(buyer.user_id, m.quote.name)
        qb[1] -= released
        qb[0] += released - quote
        buyer.locked -= released
        self.bal(seller.user_id, m.quote.name)[0] += quote - seller_fee
        sb = self.bal(seller.user_id, m.base.name)
        sb[1] -= base
        seller.locked -= base
        self.bal(buyer.user_id, m.base.name)[0] += base - buyer_fee
        if buyer_fee:
            self.bal(FEE_ACCOUNT, m.base.name)[0] += buyer_fee
        if seller_fee:
            self.bal(FEE_ACCOUNT, m.quote.name)[0] += seller_fee

        fill = Fill(self.next_trade_id, price, lots)
        out.trades.append(
            TradeExecuted(
                self.next_trade_id,
                m.symbol,
                price,
                lots,
                quote,
                taker.side,
                buyer.order_id,
                seller.order_id,
                buyer.user_id,
                seller.user_id,
                self.now,
                buyer_fee,
                seller_fee,
            )
        )
        self.next_trade_id += 1
        for order in (taker, maker):
            order.executed += lots
            order.executed_quote += quote
            order.fills.append(fill)
            order.updated_at = self.now
        if maker.remaining == 0:
            maker.status = OrderStatus.FILLED
            self._closed(maker)
        else:
            maker.status = OrderStatus.PARTIALLY_FILLED
        self.trades.append(out.trades[-1])
        self.last_price[m.symbol] = price
        reached = [
            o
            for o in self.pending_stops()
            if o.market == m.symbol
            and o not in self.triggered
            and (o.trigger_price <= price if o.rising else o.trigger_price >= price)
        ]
        reached.sort(key=lambda o: (o.trigger_price if o.rising else -o.trigger_price, o.order_id))
        self.triggered.extend(reached)

    def _unlock(self, order: RefOrder) -> None:
        m = self.config.markets[order.market]
        asset = m.quote.name if order.side is BUY else m.base.name
        entry = self.bal(order.user_id, asset)
        entry[1] -= order.locked
        entry[0] += order.locked
        order.locked = 0

    def _close_resting(self, order: RefOrder, status: OrderStatus) -> None:
        self._unlock(order)
        order.status = status
        order.updated_at = self.now
        self._closed(order)

    def _closed(self, order: RefOrder) -> None:
        self.closed.append(order.order_id)
        while len(self.closed) > self.retention:
            oldest = self.closed.pop(0)
            self.orders = [o for o in self.orders if o.order_id != oldest]

    # --- cancelling ------------------------------------------------------------------------

    def cancel(self, cmd: CancelOrder) -> RefOutcome:
        order = None
        if cmd.order_id is not None:
            order = self.find(cmd.order_id)
        elif cmd.client_order_id is not None:
            order = self.find_client(cmd.user_id, cmd.client_order_id)
        if (
            order is None
            or order.user_id != cmd.user_id
            or order.market != cmd.market
            or not order.status.is_open
        ):
            return RefOutcome(rejection(ErrorCode.ORDER_NOT_FOUND))
        self._close_resting(order, OrderStatus.CANCELLED)
        return RefOutcome(order.view())

    def cancel_all(self, cmd: CancelAll) -> RefOutcome:
        if cmd.market is not None and cmd.market not in self.config.markets:
            return RefOutcome(rejection(ErrorCode.INVALID_MARKET))
        chosen = [
            o
            for o in self.open_orders()
            if o.user_id == cmd.user_id and cmd.market in (None, o.market)
        ]
        for order in chosen:
            self._close_resting(order, OrderStatus.CANCELLED)
        return RefOutcome([o.view() for o in chosen])


def _diff(before: dict[int, int], after: dict[int, int]) -> list[tuple[int, int]]:
    """Levels whose total changed, with the new total (0: gone)."""
    prices = set(before) | set(after)
    return [(p, after.get(p, 0)) for p in prices if before.get(p, 0) != after.get(p, 0)]
