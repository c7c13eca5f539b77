"""The contract's JSON shapes, rendered from engine records.

Integers of ticks, lots and minor units become exact decimal strings here for orders, balances,
depth and the engine's events: the API's replies, the Backpack surface (which reshapes these),
the ws hub's depth snapshots and the engine's outputs (events stream and pub/sub) render through
these functions. History read from PostgreSQL (:mod:`exchange.history.queries`) and live statistics
(:mod:`exchange.ws.stats`) are still rendered by their own modules.
"""

from __future__ import annotations

from typing import Any

from exchange.markets import MarketConfig
from exchange.models import (
    Balance,
    BalanceChanged,
    Depth,
    DepthChanged,
    Event,
    OrderType,
    OrderUpdated,
    OrderView,
    Side,
    TradeExecuted,
)


def order_json(
    config: MarketConfig, order: OrderView, *, with_fills: bool = True
) -> dict[str, Any]:
    """The contract's order object (``fills`` only when asked)."""
    market = config.markets[order.market]
    out = {
        "order_id": str(order.order_id),
        "client_order_id": order.client_order_id,
        "market": order.market,
        "side": order.side.value,
        "type": order.type.value,
        "price": None if order.price is None else market.format_price(order.price),
        "quantity": None if order.quantity is None else market.format_quantity(order.quantity),
        "executed_quantity": market.format_quantity(order.executed_quantity),
        "executed_quote_quantity": market.quote.format(order.executed_quote_quantity),
        "status": order.status.value,
        "time_in_force": order.time_in_force.value,
        "post_only": order.post_only,
        "self_trade_prevention": order.self_trade_prevention.value,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
        "trigger_price": (
            None if order.trigger_price is None else market.format_price(order.trigger_price)
        ),
        "triggered_at": order.triggered_at,
    }
    if order.type is OrderType.MARKET and order.side is Side.BUY:
        out["quote_quantity"] = (
            None if order.quote_quantity is None else market.quote.format(order.quote_quantity)
        )
    if with_fills:
        out["fills"] = [
            {
                "trade_id": fill.trade_id,
                "price": market.format_price(fill.price),
                "quantity": market.format_quantity(fill.quantity),
            }
            for fill in order.fills
        ]
    return out


def trade_json(config: MarketConfig, trade: TradeExecuted) -> dict[str, Any]:
    """The contract's public trade."""
    market = config.markets[trade.market]
    return {
        "id": trade.trade_id,
        "market": trade.market,
        "price": market.format_price(trade.price),
        "quantity": market.format_quantity(trade.quantity),
        "quote_quantity": market.quote.format(trade.quote_quantity),
        "is_buyer_maker": trade.is_buyer_maker,
        "timestamp": trade.timestamp,
    }


def balances_json(config: MarketConfig, balances: dict[str, Balance]) -> dict[str, dict[str, str]]:
    return {
        asset: {
            "available": config.assets[asset].format(balance.available),
            "locked": config.assets[asset].format(balance.locked),
        }
        for asset, balance in balances.items()
    }


def ledger_json(config: MarketConfig, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The contract's ledger entries from the history's rows (integers of minor units)."""
    out = []
    for row in rows:
        asset = config.assets[row["asset"]]
        out.append(
            {**row, "amount": asset.format(row["amount"]), "balance": asset.format(row["balance"])}
        )
    return out


def levels_json(config: MarketConfig, symbol: str, levels) -> list[list[str]]:
    market = config.markets[symbol]
    return [[market.format_price(price), market.format_quantity(qty)] for price, qty in levels]


def depth_json(config: MarketConfig, depth: Depth) -> dict[str, Any]:
    """The contract's REST depth."""
    return {
        "market": depth.market,
        "bids": levels_json(config, depth.market, depth.bids),
        "asks": levels_json(config, depth.market, depth.asks),
        "last_update_id": depth.last_update_id,
        "timestamp": depth.timestamp,
    }


def event_json(config: MarketConfig, event: Event) -> dict[str, Any]:
    """An engine event in the contract's words, as the ws surfaces render it from the records
    they decode (the bus itself carries integers: :func:`exchange.codec.event_message`).

    Public fields as the contract names them, plus the private ones downstream needs
    (owners, order ids); consumers pick what they publish.
    """
    if isinstance(event, TradeExecuted):
        out = trade_json(config, event)
        out.update(
            type="trade",
            buy_order_id=str(event.buy_order_id),
            sell_order_id=str(event.sell_order_id),
            buyer_id=event.buyer_id,
            seller_id=event.seller_id,
        )
        return out
    if isinstance(event, OrderUpdated):
        order = order_json(config, event.order, with_fills=False)
        order["quote_quantity"] = (
            None
            if event.order.quote_quantity is None
            else config.markets[event.order.market].quote.format(event.order.quote_quantity)
        )
        return {"type": "order", "user_id": event.order.user_id, "order": order}
    if isinstance(event, BalanceChanged):
        asset = config.assets[event.asset]
        return {
            "type": "balance",
            "user_id": event.user_id,
            "asset": event.asset,
            "available": asset.format(event.available),
            "locked": asset.format(event.locked),
        }
    if isinstance(event, DepthChanged):
        return {
            "type": "depth",
            "market": event.market,
            "first_update_id": event.first_update_id,
            "last_update_id": event.last_update_id,
            "bids": levels_json(config, event.market, event.bids),
            "asks": levels_json(config, event.market, event.asks),
            "timestamp": event.timestamp,
        }
    raise TypeError(f"not an event: {event!r}")
