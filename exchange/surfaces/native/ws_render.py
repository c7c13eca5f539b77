"""The native surface: engine events → contract frames.

The frames' decimals come from :func:`exchange.views.event_json` of the engine's records (the
one renderer of each shape); the statistics take the records' integers as they are.

Each function renders once per event; the bytes are shared by every subscriber. Another surface
(the ``/backpack`` WebSocket) renders the same events with functions of its own and plugs into
the same :class:`~exchange.ws.hub.Hub` under its own topic names.
"""

from __future__ import annotations

from typing import Any

from exchange.marketstats import MarketStats, Trade
from exchange.models import TradeExecuted
from exchange.surfaces.native.ws_protocol import stream_frame
from exchange.ws.frames import DepthSnapshot, Frame

_PUBLIC_TRADE_FIELDS = (
    "id",
    "market",
    "price",
    "quantity",
    "quote_quantity",
    "is_buyer_maker",
    "timestamp",
)


def trade_frame(event: dict[str, Any]) -> Frame:
    """``trade@M``: the public fields only (owners and order ids stay private)."""
    data = {"type": "trade"}
    for field in _PUBLIC_TRADE_FIELDS:
        data[field] = event[field]
    return Frame.of(stream_frame(f"trade@{event['market']}", data))


def depth_frame(event: dict[str, Any]) -> Frame:
    market = event["market"]
    data = {
        "type": "depth",
        "market": market,
        "first_update_id": event["first_update_id"],
        "last_update_id": event["last_update_id"],
        "bids": event["bids"],
        "asks": event["asks"],
        "timestamp": event["timestamp"],
    }
    return Frame.of(
        stream_frame(f"depth@{market}", data),
        market=market,
        first_id=event["first_update_id"],
        last_id=event["last_update_id"],
    )


def snapshot_frame(depth_json: dict[str, Any]) -> DepthSnapshot:
    """``depth_snapshot`` from :func:`exchange.views.depth_json` of the whole book."""
    market = depth_json["market"]
    data = {
        "type": "depth_snapshot",
        "market": market,
        "bids": depth_json["bids"],
        "asks": depth_json["asks"],
        "last_update_id": depth_json["last_update_id"],
        "timestamp": depth_json["timestamp"],
    }
    return DepthSnapshot.of(
        stream_frame(f"depth@{market}", data),
        market=market,
        first_id=depth_json["last_update_id"],
        last_id=depth_json["last_update_id"],
    )


def ticker_frame(stats: MarketStats) -> Frame:
    data = {"type": "ticker", **stats.ticker_json()}
    return Frame.of(stream_frame(f"ticker@{stats.market.symbol}", data))


def kline_frame(stats: MarketStats, interval: str) -> Frame:
    data = {"type": "kline", "interval": interval, **(stats.kline_json(interval) or {})}
    return Frame.of(stream_frame(f"kline_{interval}@{stats.market.symbol}", data))


def order_frame(event: dict[str, Any]) -> Frame:
    return Frame.of(stream_frame("orders", {"type": "order", "order": event["order"]}))


def balances_frame(events: list[dict[str, Any]]) -> Frame:
    """One frame for a batch's balance changes; the latest value of each asset wins."""
    balances = {
        event["asset"]: {"available": event["available"], "locked": event["locked"]}
        for event in events
    }
    return Frame.of(stream_frame("balances", {"type": "balances", "balances": balances}))


def stats_trade(trade: TradeExecuted) -> Trade:
    """An engine trade → the integer steps :mod:`exchange.marketstats` folds (exact)."""
    return Trade(
        trade_id=trade.trade_id,
        price_ticks=trade.price,
        quantity_lots=trade.quantity,
        quote_units=trade.quote_quantity,
        timestamp_ms=trade.timestamp,
    )
