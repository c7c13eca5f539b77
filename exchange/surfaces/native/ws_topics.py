"""The native WebSocket topics on the hub: ``trade@M``, ``depth@M``, ``ticker@M``, ``kline_I@M``,
``orders`` and ``balances``, rendered once per event for whoever holds them.

:class:`NativeTopics` is the hub's first :class:`~exchange.ws.hub.Surface`: it also folds each
trade into the hub's statistics (:mod:`exchange.marketstats`), since a ticker or kline frame goes
out after every new trade with the figures as they stand after it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from exchange.markets import MarketConfig
from exchange.marketstats import INTERVALS_MS
from exchange.models import BalanceChanged, Depth, DepthChanged, Event, OrderUpdated, TradeExecuted
from exchange.surfaces.event_json import EventJson
from exchange.surfaces.native import ws_render as render
from exchange.views import depth_json
from exchange.ws.frames import Frame
from exchange.ws.hub import private_topic

if TYPE_CHECKING:
    from exchange.ws.hub import Hub


class NativeTopics:
    """The contract's streams (see the module docstring)."""

    def __init__(self, config: MarketConfig, rendered: EventJson | None = None) -> None:
        self.config = config
        # Shared with the server's other surfaces, so each event is rendered once.
        self.rendered = rendered or EventJson(config)

    def snapshot_frame(self, depth: Depth) -> Frame:
        """The ``depth_snapshot`` frame of a whole book (the hub's ``render_snapshot``)."""
        return render.snapshot_frame(depth_json(self.config, depth))

    def market_events(self, hub: Hub, symbol: str, events: list[Event]) -> None:
        rendered = self.rendered
        topics = hub.topics
        stats = hub.stats.get(symbol)
        trades: list[Frame] = []
        depth: list[Frame] = []
        tickers: list[Frame] = []
        klines: dict[str, list[Frame]] = {}
        want_trades = f"trade@{symbol}" in topics
        want_depth = f"depth@{symbol}" in topics
        want_ticker = f"ticker@{symbol}" in topics
        want_klines = [i for i in INTERVALS_MS if f"kline_{i}@{symbol}" in topics]
        for event in events:
            kind = type(event)
            if kind is TradeExecuted:
                fresh = stats is not None and stats.add(render.stats_trade(event))
                if want_trades:
                    trades.append(render.trade_frame(rendered(events, event)))
                if fresh and want_ticker:
                    tickers.append(render.ticker_frame(stats))
                if fresh:
                    for interval in want_klines:
                        klines.setdefault(interval, []).append(render.kline_frame(stats, interval))
            elif kind is DepthChanged and want_depth:
                depth.append(render.depth_frame(rendered(events, event)))
        if trades:
            hub.publish(f"trade@{symbol}", tuple(trades))
        if depth:
            hub.publish(f"depth@{symbol}", tuple(depth))
        if tickers:
            hub.publish(f"ticker@{symbol}", tuple(tickers))
        for interval, frames in klines.items():
            hub.publish(f"kline_{interval}@{symbol}", tuple(frames))

    def user_events(self, hub: Hub, user_id: str, events: list[Event]) -> None:
        rendered = self.rendered
        orders_topic = private_topic("orders", user_id)
        if orders_topic in hub.topics:
            frames = tuple(
                render.order_frame(rendered(events, e)) for e in events if type(e) is OrderUpdated
            )
            if frames:
                hub.publish(orders_topic, frames)
        balances_topic = private_topic("balances", user_id)
        if balances_topic in hub.topics:
            changes = [rendered(events, e) for e in events if type(e) is BalanceChanged]
            if changes:
                hub.publish(balances_topic, (render.balances_frame(changes),))
