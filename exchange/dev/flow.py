"""A seeded synthetic order flow: the same seed gives the same commands, always.

The mix follows a busy spot market: mostly passive limit orders a few ticks from the touch, cancels
of orders that are really open, crossing limit orders (GTC or IOC) and a few market orders (sells,
buys by quantity, buys by quote amount). To aim near the touch and to cancel orders that exist,
the generator keeps a private :class:`~exchange.engine.core.Engine` and applies every command it
makes to it; a share of stop orders (none unless :class:`Mix` asks) waits a few ticks from the last
trade price on either side, half of them market orders, half limit orders that cross when they
trigger; a list of open order ids with swap-removal picks a random one in O(1). Sequence
numbers and timestamps come from :func:`stamp`, so replaying ``funding + commands`` through a
fresh engine with the same stamps reproduces the generator's engine exactly.

Users are pre-funded by :class:`~exchange.models.Deposit` commands (``Flow.funding``) with enough
of every asset for hundreds of orders, so insufficient-funds rejections stay rare.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import attrs

from exchange.engine.core import Engine
from exchange.markets import MarketConfig
from exchange.models import (
    CancelOrder,
    Command,
    Deposit,
    OrderStatus,
    OrderType,
    OrderUpdated,
    PlaceOrder,
    Side,
    TimeInForce,
    TradeExecuted,
)

START_TS_MS = 1_700_000_000_000
# Typical prices, in ticks, of the shipped markets; others start at DEFAULT_MID_TICKS.
MID_TICKS = {"TATA_INR": 10_000, "BTC_USDT": 3_000_000, "ETH_USDT": 200_000}
DEFAULT_MID_TICKS = 10_000
# A passive order is 1..50 times the market's minimum quantity; a taking one up to twice that,
# which keeps the book at a steady size (with equal sizes the 55% of passive orders outgrow the
# cancels and fills, and the book grows without bound).
MAX_ORDER_MIN_LOTS = 50
MAX_TAKER_MIN_LOTS = 100
MAX_TRIGGER_TICKS = 10  # how far from the last trade price a stop waits
FUNDED_ORDERS = 400  # each user can pay for this many of the largest passive orders per market
# A triggered stop's first event: it runs (new) or cannot (rejected).
_TRIGGERED_FIRST = (OrderStatus.NEW, OrderStatus.REJECTED)


@attrs.frozen
class Mix:
    """Shares of each kind of command (they need not add up to 1)."""

    passive: float = 0.55
    cancel: float = 0.25
    crossing: float = 0.15
    market: float = 0.05
    stop: float = 0.0


def stamp(seq: int) -> tuple[int, int]:
    """The ``(seq, ts)`` of the ``seq``-th command (1-based): one command per millisecond."""
    return seq, START_TS_MS + seq


def replay(engine: Engine, commands: Iterable[Command], first_seq: int = 1) -> None:
    """Apply ``commands`` to ``engine`` with the flow's stamps, from ``first_seq`` on."""
    for seq, command in enumerate(commands, first_seq):
        engine.apply(command, seq=seq, ts=START_TS_MS + seq)


class Flow:
    """Generates commands over ``config``'s markets for ``users`` users from ``seed``."""

    def __init__(
        self,
        config: MarketConfig,
        *,
        seed: int,
        users: int = 1000,
        markets: list[str] | None = None,
        mix: Mix | None = None,
        client_id_share: float = 0.2,
    ) -> None:
        self.config = config
        self.rng = random.Random(seed)
        self.users = [f"user{i}" for i in range(users)]
        self.markets = [config.markets[m] for m in (markets or sorted(config.markets))]
        self.mix = mix or Mix()
        self.client_id_share = client_id_share
        self.engine = Engine(config)
        self.seq = 0
        self.ref_ticks = {
            m.symbol: MID_TICKS.get(m.symbol, DEFAULT_MID_TICKS) for m in self.markets
        }
        # Open orders as (user, market, order_id, client_order_id), with index by order id.
        self.open: list[tuple[str, str, int, str | None]] = []
        self.open_index: dict[int, int] = {}
        self.trades = 0
        self.stops_triggered = 0
        self.funding = self._funding()
        for command in self.funding:
            self._apply(command)

    # --- public ----------------------------------------------------------------------------

    def commands(self, count: int) -> list[Command]:
        """The next ``count`` trading commands (the funding deposits come before them)."""
        return [self.next_command() for _ in range(count)]

    def next_command(self) -> Command:
        rng, mix = self.rng, self.mix
        roll = rng.random() * (mix.passive + mix.cancel + mix.crossing + mix.market + mix.stop)
        if roll < mix.cancel and self.open:
            command = self._cancel()
        elif roll < mix.cancel + mix.passive or (roll < mix.cancel and not self.open):
            command = self._limit(crossing=False)
        elif roll < mix.cancel + mix.passive + mix.crossing:
            command = self._limit(crossing=True)
        elif roll < mix.cancel + mix.passive + mix.crossing + mix.market:
            command = self._market()
        else:
            command = self._stop()
        self._apply(command)
        return command

    # --- making commands -------------------------------------------------------------------

    def _funding(self) -> list[Deposit]:
        need: dict[str, int] = {}
        for m in self.markets:
            lots = MAX_ORDER_MIN_LOTS * m.min_lots
            mid = self.ref_ticks[m.symbol]
            need[m.quote.name] = need.get(m.quote.name, 0) + FUNDED_ORDERS * m.quote_units(
                2 * mid, lots
            )
            need[m.base.name] = need.get(m.base.name, 0) + FUNDED_ORDERS * m.base_units(lots)
        return [
            Deposit(user, asset, amount) for user in self.users for asset, amount in need.items()
        ]

    def _touch(self, symbol: str) -> tuple[int, int]:
        """Best bid and ask, made up around the last known price where a side is empty."""
        book = self.engine.books[symbol]
        bid, ask = book.best_price(Side.BUY), book.best_price(Side.SELL)
        if bid is None and ask is None:
            ref = self.ref_ticks[symbol]
            bid, ask = ref - 1, ref + 1
        elif bid is None:
            bid = max(1, ask - 2)
        elif ask is None:
            ask = bid + 2
        self.ref_ticks[symbol] = (bid + ask) // 2
        return bid, ask

    def _client_id(self) -> str | None:
        if self.rng.random() < self.client_id_share:
            return f"c{self.seq + 1}"
        return None

    def _limit(self, *, crossing: bool) -> PlaceOrder:
        rng = self.rng
        m = rng.choice(self.markets)
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        bid, ask = self._touch(m.symbol)
        if crossing:
            price = ask + rng.randint(0, 2) if side is Side.BUY else bid - rng.randint(0, 2)
            tif = TimeInForce.IOC if rng.random() < 0.35 else TimeInForce.GTC
            lots = rng.randint(1, MAX_TAKER_MIN_LOTS)
        else:
            # -1 improves the touch when the spread leaves room; never crosses.
            offset = rng.randint(-1, 4)
            price = min(bid - offset, ask - 1) if side is Side.BUY else max(ask + offset, bid + 1)
            tif = TimeInForce.GTC
            lots = rng.randint(1, MAX_ORDER_MIN_LOTS)
        return PlaceOrder(
            user_id=rng.choice(self.users),
            market=m.symbol,
            side=side,
            price=max(1, price),
            quantity=m.min_lots * lots,
            time_in_force=tif,
            client_order_id=self._client_id(),
        )

    def _market(self) -> PlaceOrder:
        rng = self.rng
        m = rng.choice(self.markets)
        user = rng.choice(self.users)
        lots = m.min_lots * rng.randint(1, MAX_TAKER_MIN_LOTS)
        kind = rng.random()
        if kind < 0.4:
            return PlaceOrder(user, m.symbol, Side.SELL, OrderType.MARKET, quantity=lots)
        if kind < 0.7:
            return PlaceOrder(user, m.symbol, Side.BUY, OrderType.MARKET, quantity=lots)
        _, ask = self._touch(m.symbol)
        budget = m.quote_units(ask, lots)
        return PlaceOrder(user, m.symbol, Side.BUY, OrderType.MARKET, quote_quantity=budget)

    def _stop(self) -> PlaceOrder:
        """A stop order a few ticks above or below the last trade (a passive order if none)."""
        rng = self.rng
        m = rng.choice(self.markets)
        last = self.engine.stops[m.symbol].last_price
        if last is None:
            return self._limit(crossing=False)
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        distance = rng.randint(1, MAX_TRIGGER_TICKS)
        trigger = last + distance if rng.random() < 0.5 else max(1, last - distance)
        if trigger == last:
            trigger = last + 1
        user = rng.choice(self.users)
        lots = m.min_lots * rng.randint(1, MAX_ORDER_MIN_LOTS)
        if rng.random() < 0.5:
            return PlaceOrder(
                user, m.symbol, side, OrderType.MARKET, quantity=lots, trigger_price=trigger
            )
        # A limit a little through the trigger, so that it takes when it triggers.
        slack = rng.randint(0, 3)
        price = trigger + slack if side is Side.BUY else max(1, trigger - slack)
        return PlaceOrder(
            user,
            m.symbol,
            side,
            price=price,
            quantity=lots,
            client_order_id=self._client_id(),
            trigger_price=trigger,
        )

    def _cancel(self) -> CancelOrder:
        user, market, order_id, client_id = self.open[self.rng.randrange(len(self.open))]
        if client_id is not None:
            return CancelOrder(user, market, client_order_id=client_id)
        return CancelOrder(user, market, order_id=order_id)

    # --- tracking --------------------------------------------------------------------------

    def _apply(self, command: Command) -> None:
        self.seq += 1
        seq, ts = stamp(self.seq)
        outcome = self.engine.apply(command, seq=seq, ts=ts)
        for event in outcome.events:
            kind = type(event)
            if kind is TradeExecuted:
                self.trades += 1
            if kind is not OrderUpdated:
                continue
            order = event.order
            if order.triggered_at == ts and order.status in _TRIGGERED_FIRST:
                self.stops_triggered += 1
            if order.status.is_open:
                if order.order_id not in self.open_index:
                    self.open_index[order.order_id] = len(self.open)
                    self.open.append(
                        (order.user_id, order.market, order.order_id, order.client_order_id)
                    )
            elif order.order_id in self.open_index:
                self._forget(order.order_id)

    def _forget(self, order_id: int) -> None:
        position = self.open_index.pop(order_id)
        last = self.open.pop()
        if last[2] != order_id:
            self.open[position] = last
            self.open_index[last[2]] = position
