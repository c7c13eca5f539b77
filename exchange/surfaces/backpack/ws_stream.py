"""The ``/backpack`` WebSocket: Backpack's topics and frames over the ws server's hub.

The hub already holds the Redis subscriptions and renders every engine event once per topic;
:class:`BackpackTopics` plugs into it (a :class:`~exchange.ws.hub.Surface`) and renders the same events a second
way, in Backpack's names, only for the topics some ``/backpack`` client holds. Topic names on the
hub carry a ``bp|`` prefix so they never collide with native ones, and private ones the user
(``bp|account.orderUpdate#42``), exactly like the native ``orders#42``.

Frames are ``{"stream": topic, "data": {"e": event, ...}}`` with times in microseconds:

- ``depth.M``: deltas only (``U``/``u`` on the engine's depth sequence, the one REST
  ``lastUpdateId`` is on; absolute sizes, ``"0"`` deletes). ccxt never checks that deltas are
  contiguous, so a client that would miss one (a lost pub/sub message) is disconnected instead:
  its ccxt reconnects, resubscribes and fetches a fresh snapshot.
- ``trade.M``, ``ticker.M`` (24 h, from the hub's statistics), ``kline.<interval>.M``.
- ``bookTicker.M``: the best bid and ask after each change of the top of the book, from a book
  kept only for markets with subscribers (:mod:`exchange.surfaces.backpack.book_ticker`).
- ``account.orderUpdate[.M]``: orderAccepted / orderFill / orderCancelled / orderExpired with
  Backpack's fields (``l``/``L`` the quantity and average price since the order's previous update
  this server saw, ``z``/``Z`` cumulative). ``account.balanceUpdate``: absolute values per asset.
  ``account.rfqUpdate`` is accepted and stays silent (there are no RFQs here).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any

import orjson

from exchange.markets import MarketConfig
from exchange.marketstats import INTERVALS_MS
from exchange.models import BalanceChanged, DepthChanged, Event, OrderUpdated, TradeExecuted
from exchange.money import format_decimal
from exchange.surfaces.backpack.book_ticker import BookTickers
from exchange.surfaces.backpack.translate import (
    SELF_TRADE_NAMES,
    SIDE_NAMES,
    STATUS_NAMES,
    TRIGGER_FAILED,
    client_id_value,
)
from exchange.surfaces.event_json import EventJson
from exchange.ws.frames import Frame

if TYPE_CHECKING:
    from exchange.ws.hub import Hub

PREFIX = "bp|"
PRIVATE_TOPICS = ("account.orderUpdate", "account.balanceUpdate", "account.rfqUpdate")
_TRACKED_ORDERS = 100_000


def hub_topic(topic: str, user_id: str | None = None) -> str:
    return PREFIX + topic if user_id is None else f"{PREFIX}{topic}#{user_id}"


def _frame(stream: str, data: dict[str, Any], **depth: Any) -> Frame:
    return Frame.of(orjson.dumps({"stream": stream, "data": data}), **depth)


def _iso_seconds(iso: str) -> str:
    return iso.removesuffix("Z")


class BackpackTopics:
    """Renders engine events for the hub's ``bp|`` topics (see the module docstring)."""

    def __init__(self, config: MarketConfig, rendered: EventJson | None = None) -> None:
        self.config = config
        # Shared with the server's native surface, so each event is rendered once.
        self.rendered = rendered or EventJson(config)
        # order id → (executed quantity, executed quote) last seen, to give l/L per update
        self._executed: OrderedDict[str, tuple[Decimal, Decimal]] = OrderedDict()
        self.book_tickers = BookTickers(config)

    # --- market channels -----------------------------------------------------------------------

    def market_events(self, hub: Hub, symbol: str, events: list[Event]) -> None:
        self.book_tickers.market_events(hub, symbol, events)
        wants = hub.wants
        trade_topic, depth_topic = hub_topic(f"trade.{symbol}"), hub_topic(f"depth.{symbol}")
        ticker_topic = hub_topic(f"ticker.{symbol}")
        kline_topics = [
            (i, hub_topic(f"kline.{i}.{symbol}"))
            for i in INTERVALS_MS
            if wants(hub_topic(f"kline.{i}.{symbol}"))
        ]
        if not (wants(trade_topic) or wants(depth_topic) or wants(ticker_topic) or kline_topics):
            return
        trades, deltas = [], []
        traded = False
        rendered = self.rendered
        for event in events:
            kind = type(event)
            if kind is TradeExecuted:
                traded = True
                if wants(trade_topic):
                    trades.append(self.trade_frame(rendered(events, event)))
            elif kind is DepthChanged and wants(depth_topic):
                deltas.append(self.depth_frame(rendered(events, event)))
        if trades:
            hub.publish(trade_topic, tuple(trades))
        if deltas:
            hub.publish(depth_topic, tuple(deltas))
        stats = hub.stats.get(symbol)
        if traded and stats is not None:
            now_us = getattr(events[-1], "timestamp", 0) * 1000
            if wants(ticker_topic):
                hub.publish(ticker_topic, (self.ticker_frame(stats, now_us),))
            for interval, topic in kline_topics:
                kline = stats.kline_json(interval)
                if kline is not None:
                    hub.publish(topic, (self.kline_frame(symbol, interval, kline, now_us),))

    @staticmethod
    def trade_frame(event: dict[str, Any]) -> Frame:
        micros = event["timestamp"] * 1000
        data = {
            "e": "trade",
            "E": micros,
            "s": event["market"],
            "p": event["price"],
            "q": event["quantity"],
            "b": event["buy_order_id"],
            "a": event["sell_order_id"],
            "t": event["id"],
            "T": micros,
            "m": event["is_buyer_maker"],
        }
        return _frame(f"trade.{event['market']}", data)

    @staticmethod
    def depth_frame(event: dict[str, Any]) -> Frame:
        market, micros = event["market"], event["timestamp"] * 1000
        data = {
            "e": "depth",
            "E": micros,
            "s": market,
            "a": event["asks"],
            "b": event["bids"],
            "U": event["first_update_id"],
            "u": event["last_update_id"],
            "T": micros,
        }
        return _frame(
            f"depth.{market}",
            data,
            market=market,
            first_id=event["first_update_id"],
            last_id=event["last_update_id"],
        )

    @staticmethod
    def ticker_frame(stats: Any, now_us: int) -> Frame:
        ticker = stats.ticker_json()
        data = {
            "e": "ticker",
            "E": now_us,
            "s": ticker["market"],
            "o": ticker["first_price"],
            "c": ticker["last_price"],
            "h": ticker["high"],
            "l": ticker["low"],
            "v": ticker["volume"],
            "V": ticker["quote_volume"],
            "n": ticker["trades"],
        }
        return _frame(f"ticker.{ticker['market']}", data)

    @staticmethod
    def kline_frame(symbol: str, interval: str, kline: dict[str, Any], now_us: int) -> Frame:
        data = {
            "e": "kline",
            "E": now_us,
            "s": symbol,
            "t": _iso_seconds(kline["start"]),
            "T": _iso_seconds(kline["start"]),  # ccxt reads the candle's time from T
            "o": kline["open"],
            "c": kline["close"],
            "h": kline["high"],
            "l": kline["low"],
            "v": kline["volume"],
            "n": kline["trades"],
            "X": False,
        }
        return _frame(f"kline.{interval}.{symbol}", data)

    # --- user channels -------------------------------------------------------------------------

    def user_events(self, hub: Hub, user_id: str, events: list[Event]) -> None:
        rendered = self.rendered
        wants = hub.wants
        all_orders = hub_topic("account.orderUpdate", user_id)
        balances = hub_topic("account.balanceUpdate", user_id)
        for event in events:
            kind = type(event)
            if kind is OrderUpdated:
                order = rendered(events, event)["order"]
                market_orders = hub_topic(f"account.orderUpdate.{order['market']}", user_id)
                frames = self.order_frames(order)  # always: keeps l/L tracking right
                if frames and wants(all_orders):
                    hub.publish(
                        all_orders, tuple(_restream(f, "account.orderUpdate") for f in frames)
                    )
                if frames and wants(market_orders):
                    stream = f"account.orderUpdate.{order['market']}"
                    hub.publish(market_orders, tuple(_restream(f, stream) for f in frames))
            elif kind is BalanceChanged and wants(balances):
                hub.publish(balances, (self.balance_frame(rendered(events, event)),))

    def order_frames(self, order: dict[str, Any]) -> list[dict[str, Any]]:
        """Backpack's order events for one native order update (data dicts, not yet framed)."""
        status = order["status"]
        order_id = order["order_id"]
        if status == "rejected" and order.get("trigger_price") is None:
            # a refused post-only: the REST call said so; nothing rested
            self._executed.pop(order_id, None)
            return []
        executed = Decimal(order["executed_quantity"])
        executed_quote = Decimal(order["executed_quote_quantity"])
        before, before_quote = self._executed.pop(order_id, (Decimal(0), Decimal(0)))
        if status in ("new", "partially_filled"):
            self._executed[order_id] = (executed, executed_quote)
            if len(self._executed) > _TRACKED_ORDERS:
                self._executed.popitem(last=False)
        micros = order["updated_at"] * 1000
        base = {
            "E": micros,
            "s": order["market"],
            "i": order_id,
            "c": client_id_value(order["client_order_id"]),
            "S": SIDE_NAMES[order["side"]],
            "o": order["type"].upper(),
            "f": order["time_in_force"],
            "p": order["price"],
            "q": order["quantity"],
            "Q": order.get("quote_quantity"),
            "V": SELF_TRADE_NAMES[order["self_trade_prevention"]],
            "z": order["executed_quantity"],
            "Z": order["executed_quote_quantity"],
            "T": micros,
        }
        if order.get("trigger_price") is not None:
            base["P"] = order["trigger_price"]
        out = []
        if status == "trigger_pending":  # a stop placed, waiting for its price
            return [dict(base, e="triggerPlaced", X=STATUS_NAMES[status])]
        if status == "rejected":  # a stop triggered that could not run
            return [dict(base, e="triggerFailed", X=TRIGGER_FAILED)]
        filled = executed - before
        if status == "new" and filled == 0:
            out.append(dict(base, e="orderAccepted", X="New"))
        if filled > 0:
            with localcontext() as ctx:
                ctx.prec = 40
                average = (executed_quote - before_quote) / filled
            fill_status = "Filled" if status == "filled" else "PartiallyFilled"
            out.append(
                dict(
                    base,
                    e="orderFill",
                    X=fill_status,
                    l=format_decimal(filled),
                    L=format_decimal(average),
                )
            )
        if status in ("cancelled", "expired"):
            event = "orderCancelled" if status == "cancelled" else "orderExpired"
            out.append(dict(base, e=event, X=STATUS_NAMES[status]))
        return out

    @staticmethod
    def balance_frame(event: dict[str, Any]) -> Frame:
        data = {
            "e": "balanceUpdate",
            "E": time.time_ns() // 1000,  # balance events carry no time of their own
            "a": event["asset"],
            "A": event["available"],
            "L": event["locked"],
            "S": "0",
        }
        return _frame("account.balanceUpdate", data)


def _restream(data: dict[str, Any], stream: str) -> Frame:
    return _frame(stream, data)
