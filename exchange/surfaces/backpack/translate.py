"""Backpack's names, units and shapes ↔ the exchange's records (pure: no I/O, no clock).

Requests are translated into the native request dicts and parsed by
:mod:`exchange.surfaces.commands`, so the facade validates money exactly as ``/api/v1`` does and
builds the very same engine commands. Replies and history rows are translated from the native
contract shapes (:mod:`exchange.views`, :mod:`exchange.history.queries`). Units that differ: depth
timestamps in microseconds, kline times in seconds and ``"YYYY-MM-DD HH:MM:SS"``, fill
timestamps as ISO-8601 text, ``priceChangePercent`` as a fraction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from exchange.errors import ErrorCode, RequestError
from exchange.markets import Market, MarketConfig
from exchange.models import Depth, OrderView, PlaceOrder
from exchange.money import format_decimal, format_units, parse_decimal
from exchange.surfaces.commands import no_such_order, parse_order
from exchange.validation import MAX_CLIENT_ORDER_ID_LENGTH
from exchange.views import order_json as native_order_json

# --- names -------------------------------------------------------------------------------------

SIDES = {"Bid": "buy", "Ask": "sell"}
SIDE_NAMES = {native: name for name, native in SIDES.items()}
ORDER_TYPES = {"Limit": "limit", "Market": "market"}
ORDER_TYPE_NAMES = {native: name for name, native in ORDER_TYPES.items()}
SELF_TRADE = {
    "RejectTaker": "cancel_taker",
    "RejectMaker": "cancel_maker",
    "RejectBoth": "cancel_both",
}
SELF_TRADE_NAMES = {native: name for name, native in SELF_TRADE.items()}
# Backpack has no "Rejected" (ccxt would pass it through raw); a refused post-only is answered
# with an error instead, so "rejected" only shows up in history, where Expired says it.
STATUS_NAMES = {
    "new": "New",
    "partially_filled": "PartiallyFilled",
    "filled": "Filled",
    "cancelled": "Cancelled",
    "expired": "Expired",
    "rejected": "Expired",
    "trigger_pending": "TriggerPending",
}
# A triggered stop that could not run (a market buy by quantity finding no quote available):
# natively ``rejected`` with a ``trigger_price`` (post-only orders, the other ``rejected``,
# take no trigger). See exchange.engine.stops.
TRIGGER_FAILED = "TriggerFailed"
ORDER_FIELDS = frozenset(
    {
        "symbol",
        "side",
        "orderType",
        "price",
        "quantity",
        "quoteQuantity",
        "clientId",
        "postOnly",
        "timeInForce",
        "selfTradePrevention",
        "triggerPrice",
        "triggerQuantity",
    }
)
MAX_CLIENT_ID_DIGITS = MAX_CLIENT_ORDER_ID_LENGTH  # Backpack's integer, as native digits


def refuse(message: str) -> RequestError:
    """A malformed Backpack request (answered INVALID_CLIENT_REQUEST)."""
    return RequestError(ErrorCode.INVALID_REQUEST, message)


# --- market data -------------------------------------------------------------------------------


def iso_ms(timestamp_ms: int) -> str:
    """``2024-01-01T00:00:00.123Z``."""
    moment = datetime.fromtimestamp(timestamp_ms // 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{timestamp_ms % 1000:03d}Z"


def assets_json(config: MarketConfig) -> list[dict[str, Any]]:
    return [{"symbol": name, "displayName": name, "tokens": []} for name in config.assets]


def market_json(market: Market) -> dict[str, Any]:
    return {
        "symbol": market.symbol,
        "baseSymbol": market.base.name,
        "quoteSymbol": market.quote.name,
        "marketType": "SPOT",
        "orderBookState": "Open",
        "visible": True,
        "filters": {
            "price": {
                "tickSize": format_decimal(market.tick_size),
                "minPrice": format_decimal(market.tick_size),
                "maxPrice": format_decimal(market.max_price),
            },
            "quantity": {
                "stepSize": format_decimal(market.lot_size),
                "minQuantity": format_decimal(market.min_quantity),
                "maxQuantity": format_decimal(market.max_quantity),
            },
        },
        "createdAt": "2024-01-01T00:00:00",
    }


def depth_json(config: MarketConfig, depth: Depth) -> dict[str, Any]:
    """REST depth; ``lastUpdateId`` is on the engine's depth sequence (what WS deltas carry)."""
    market = config.markets[depth.market]
    price, quantity = market.format_price, market.format_quantity
    return {
        "bids": [[price(p), quantity(q)] for p, q in depth.bids],
        "asks": [[price(p), quantity(q)] for p, q in depth.asks],
        "lastUpdateId": str(depth.last_update_id),
        "timestamp": depth.timestamp * 1000,  # microseconds
    }


def trade_json(trade: Mapping[str, Any]) -> dict[str, Any]:
    """A native public trade → Backpack's."""
    return {
        "id": trade["id"],
        "price": trade["price"],
        "quantity": trade["quantity"],
        "quoteQuantity": trade["quote_quantity"],
        "timestamp": trade["timestamp"],
        "isBuyerMaker": trade["is_buyer_maker"],
    }


def _kline_time(iso_text: str) -> str:
    """``2024-01-01T00:00:00Z`` → ``2024-01-01 00:00:00``."""
    return iso_text.replace("T", " ").removesuffix("Z")


def kline_json(kline: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "start": _kline_time(kline["start"]),
        "end": _kline_time(kline["end"]),
        "open": kline["open"],
        "high": kline["high"],
        "low": kline["low"],
        "close": kline["close"],
        "volume": kline["volume"],
        "quoteVolume": kline["quote_volume"],
        "trades": str(kline["trades"]),
    }


def percent_fraction(percent: str | None) -> str | None:
    """The native ``price_change_percent`` (e.g. ``"1.25"``) → a fraction (``"0.0125"``)."""
    if percent is None:
        return None
    negative = percent.startswith("-")
    value = format_decimal(parse_decimal(percent.lstrip("-")).scaleb(-2))
    return "-" + value if negative and value != "0" else value


def ticker_json(ticker: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "symbol": ticker["market"],
        "firstPrice": ticker["first_price"],
        "lastPrice": ticker["last_price"],
        "priceChange": ticker["price_change"],
        "priceChangePercent": percent_fraction(ticker["price_change_percent"]),
        "high": ticker["high"],
        "low": ticker["low"],
        "volume": ticker["volume"],
        "quoteVolume": ticker["quote_volume"],
        "trades": str(ticker["trades"]),
    }


# --- orders --------------------------------------------------------------------------------------


def _name(table: Mapping[str, str], value: Any, field: str) -> str:
    native = table.get(value) if isinstance(value, str) else None
    if native is None:
        raise RequestError(
            ErrorCode.INVALID_ORDER, f"{field} must be one of {', '.join(sorted(table))}"
        )
    return native


def client_id_text(value: Any) -> str:
    """Backpack's integer ``clientId`` → the native ``client_order_id`` (its digits)."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, Decimal) and value == value.to_integral_value():
        value = int(value)
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < 0
        or len(str(value)) > MAX_CLIENT_ID_DIGITS
    ):
        raise RequestError(ErrorCode.INVALID_ORDER, "clientId must be a non-negative integer")
    return str(value)


def client_id_reference(value: Any) -> str:
    """The ``clientId`` a cancel or lookup names. A string or integer that no order can have
    (``"abc"``, ``-1``, 40 digits) names none: RequestError(ORDER_NOT_FOUND), as for the native
    surface; anything else is refused like :func:`client_id_text`."""
    try:
        return client_id_text(value)
    except RequestError:
        if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
            raise no_such_order() from None
        raise


def client_id_value(client_order_id: str | None) -> int | str | None:
    """The native client id as Backpack shows it: an integer when it is one."""
    if client_order_id is not None and client_order_id.isascii() and client_order_id.isdigit():
        return int(client_order_id)
    return client_order_id


def order_request(config: MarketConfig, data: Any, *, user_id: str) -> PlaceOrder:
    """A Backpack order body → the native :class:`PlaceOrder` (validated by the native parser).

    Raises RequestError (native codes; the surface maps them).
    """
    if not isinstance(data, dict):
        raise refuse("an order must be a JSON object")
    unknown = sorted(set(data) - ORDER_FIELDS)
    if unknown:
        raise refuse(f"unknown field {unknown[0]!r}")
    native: dict[str, Any] = {"market": data.get("symbol")}
    native["side"] = _name(SIDES, data.get("side"), "side")
    native["type"] = _name(ORDER_TYPES, data.get("orderType", "Limit"), "orderType")
    for name, field in (
        ("price", "price"),
        ("quantity", "quantity"),
        ("quoteQuantity", "quote_quantity"),
        ("timeInForce", "time_in_force"),
        ("postOnly", "post_only"),
        ("triggerPrice", "trigger_price"),
    ):
        if data.get(name) is not None:
            native[field] = data[name]
    # A stop order's size is its triggerQuantity, as ccxt sends it (or a market buy's
    # quoteQuantity); Backpack refuses a triggerQuantity without a triggerPrice.
    if data.get("triggerQuantity") is not None:
        if data.get("triggerPrice") is None:
            raise refuse("give both triggerPrice and triggerQuantity or neither")
        if data.get("quantity") is not None:
            raise refuse("give quantity or triggerQuantity, not both")
        native["quantity"] = data["triggerQuantity"]
    if data.get("clientId") is not None:
        native["client_order_id"] = client_id_text(data["clientId"])
    if data.get("selfTradePrevention") is not None:
        native["self_trade_prevention"] = _name(
            SELF_TRADE, data["selfTradePrevention"], "selfTradePrevention"
        )
    return parse_order(config, native, user_id=user_id)


def order_json(config: MarketConfig, order: OrderView | Mapping[str, Any]) -> dict[str, Any]:
    """An order (engine view, or a native history dict) → Backpack's order object."""
    if isinstance(order, OrderView):
        order = native_order_json(config, order, with_fills=False)
    return {
        "id": order["order_id"],
        "clientId": client_id_value(order["client_order_id"]),
        "symbol": order["market"],
        "side": SIDE_NAMES[order["side"]],
        "orderType": ORDER_TYPE_NAMES[order["type"]],
        "timeInForce": order["time_in_force"],
        "postOnly": order["post_only"],
        "selfTradePrevention": SELF_TRADE_NAMES[order["self_trade_prevention"]],
        "price": order["price"],
        "quantity": order["quantity"],
        "quoteQuantity": order.get("quote_quantity"),
        "executedQuantity": order["executed_quantity"],
        "executedQuoteQuantity": order["executed_quote_quantity"],
        "status": status_name(order),
        "createdAt": order["created_at"],
        "triggerPrice": order.get("trigger_price"),
        "triggerQuantity": None if order.get("trigger_price") is None else order["quantity"],
        "triggeredAt": order.get("triggered_at"),
    }


def status_name(order: Mapping[str, Any]) -> str:
    """Backpack's status of a native order object."""
    if order["status"] == "rejected" and order.get("trigger_price") is not None:
        return TRIGGER_FAILED
    return STATUS_NAMES[order["status"]]


def fill_json(config: MarketConfig, fill: Mapping[str, Any]) -> dict[str, Any]:
    """A native fill → Backpack's, with the fee the engine charged (buyers pay in base,
    sellers in quote; the engine rounds each fee down to the asset's minor unit)."""
    market = config.markets[fill["market"]]
    bps = market.maker_fee_bps if fill["is_maker"] else market.taker_fee_bps
    if fill["side"] == "buy":
        asset, amount = market.base, parse_decimal(fill["quantity"])
    else:
        asset, amount = market.quote, parse_decimal(fill["quote_quantity"])
    fee_units = asset.to_units(amount) * bps // 10_000
    return {
        "tradeId": fill["trade_id"],
        "orderId": fill["order_id"],
        "symbol": fill["market"],
        "side": SIDE_NAMES[fill["side"]],
        "price": fill["price"],
        "quantity": fill["quantity"],
        "quoteQuantity": fill["quote_quantity"],
        "fee": format_units(fee_units, asset.decimals),
        "feeSymbol": asset.name,
        "isMaker": fill["is_maker"],
        "timestamp": iso_ms(fill["timestamp"]),
    }


def capital_json(balances: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """Native balances (:func:`exchange.views.balances_json`) → ``/api/v1/capital``."""
    return {
        asset: {"available": b["available"], "locked": b["locked"], "staked": "0"}
        for asset, b in balances.items()
    }
