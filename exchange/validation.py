"""An order checked against its market, once, for the engine and every surface (pure).

A surface reads a request's decimals into integer ticks and lots, refusing anything off a step or
outside a market's range as it reads (:mod:`exchange.surfaces.commands`); then it runs
:func:`validate_order`, the engine's own check, so a malformed order costs no round trip. The
engine runs the same function on every command it applies, since the log may hold commands from
any writer. One function in a module of its own means the surfaces never import the engine core
and the two checks cannot drift apart. A stop order's own checks (:func:`validate_trigger`) live
here for the same reason; only whether its trigger may wait against the last trade price needs
the engine's state.
"""

from __future__ import annotations

from exchange.errors import ErrorCode
from exchange.markets import Market
from exchange.models import OrderType, PlaceOrder, Rejection, Side, TimeInForce

MAX_CLIENT_ORDER_ID_LENGTH = 36

# Enum members as module constants: on Python 3.11 each ``Enum.MEMBER`` lookup costs ~50 ns,
# and every order placed runs this check.
LIMIT = OrderType.LIMIT
SELL = Side.SELL
GTC, FOK = TimeInForce.GTC, TimeInForce.FOK


def validate_order(cmd: PlaceOrder, market: Market) -> Rejection | None:
    """Check a new order against its market's limits; ``None`` when it is well formed."""
    if cmd.type is LIMIT:
        if cmd.price is None or not 0 < cmd.price <= market.max_ticks:
            return Rejection(
                ErrorCode.INVALID_PRICE, "limit orders need a price within the market's range"
            )
        if cmd.quote_quantity is not None:
            return Rejection(ErrorCode.INVALID_ORDER, "quote_quantity is only for market buys")
    else:
        if cmd.price is not None:
            return Rejection(ErrorCode.INVALID_PRICE, "market orders take no price")
        if cmd.post_only:
            return Rejection(ErrorCode.INVALID_ORDER, "a market order cannot be post-only")
        if cmd.time_in_force is FOK:
            return Rejection(ErrorCode.INVALID_ORDER, "FOK applies to limit orders only")
        if cmd.quote_quantity is not None:
            if cmd.side is SELL:
                return Rejection(
                    ErrorCode.INVALID_QUANTITY, "quote_quantity is only for market buys"
                )
            if cmd.quantity is not None:
                return Rejection(
                    ErrorCode.INVALID_QUANTITY, "give quantity or quote_quantity, not both"
                )
            if cmd.quote_quantity <= 0:
                return Rejection(ErrorCode.INVALID_QUANTITY, "quote_quantity must be positive")
            return _validate_client_id(cmd)
    if cmd.quantity is None or not market.min_lots <= cmd.quantity <= market.max_lots:
        return Rejection(
            ErrorCode.INVALID_QUANTITY,
            f"quantity must be between {market.format_quantity(market.min_lots)} "
            f"and {market.format_quantity(market.max_lots)}",
        )
    if cmd.post_only and cmd.time_in_force is not GTC:
        return Rejection(ErrorCode.INVALID_ORDER, "post-only orders must be GTC")
    return _validate_client_id(cmd)


def validate_trigger(cmd: PlaceOrder, market: Market) -> Rejection | None:
    """What a stop order (``trigger_price`` set) must satisfy beyond :func:`validate_order`,
    read from the command alone; whether its trigger can wait against the market's last trade
    price only the engine knows (:meth:`exchange.engine.stops.PendingStops.refuse`)."""
    if cmd.post_only or cmd.time_in_force is FOK:
        return Rejection(ErrorCode.INVALID_ORDER, "post-only and FOK orders take no trigger_price")
    if not 0 < cmd.trigger_price <= market.max_ticks:
        return Rejection(
            ErrorCode.INVALID_PRICE, "trigger_price must be within the market's price range"
        )
    return None


def _validate_client_id(cmd: PlaceOrder) -> Rejection | None:
    cid = cmd.client_order_id
    if cid is not None and not 0 < len(cid) <= MAX_CLIENT_ORDER_ID_LENGTH:
        return Rejection(
            ErrorCode.INVALID_CLIENT_ORDER_ID, "client_order_id must be 1 to 36 characters"
        )
    return None
