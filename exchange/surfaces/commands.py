"""Request fields → engine commands: money read into integer steps, every refusal precise.

Every function here either returns a record from :mod:`exchange.models` (or a plain value) or
raises :class:`~exchange.errors.RequestError` with the precise contract code and a message a
person can act on. Nothing here does I/O, so a refused request never reaches the engine and
never changes state. Both REST surfaces build their commands here: the native routes from the
contract's fields, ``/backpack`` after translating its names into them
(:mod:`exchange.surfaces.backpack.translate`).

:mod:`exchange.money` turns exact decimals into integer ticks, lots and minor units, refusing
anything off the market's step or outside its limits; :func:`exchange.validation.validate_order`
then runs the engine's own check, so a malformed order costs no round trip.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from exchange.errors import ErrorCode, RequestError
from exchange.markets import Market, MarketConfig
from exchange.models import (
    CancelAll,
    CancelOrder,
    Deposit,
    OrderType,
    PlaceOrder,
    SelfTradePrevention,
    Side,
    TimeInForce,
    Withdraw,
)
from exchange.money import MoneyError, parse_decimal, to_steps
from exchange.surfaces.limits import MAX_BATCH_ORDERS
from exchange.surfaces.params import check_fields, fail, market_of, user_id_value
from exchange.validation import MAX_CLIENT_ORDER_ID_LENGTH, validate_order, validate_trigger

# A Decimal like 1e999999999 is tiny as JSON but gigantic as digits: refuse it by its exponent
# before anything writes it out.
_MAX_DECIMAL_EXPONENT = 40
_ORDER_ID = re.compile(r"[0-9]{1,19}")
# Engine ids are PostgreSQL bigints (and 64-bit integers on the wire); a larger one names no order.
MAX_ORDER_ID = 2**63 - 1

ORDER_FIELDS = frozenset(
    {
        "market",
        "symbol",
        "side",
        "type",
        "price",
        "quantity",
        "quote_quantity",
        "time_in_force",
        "post_only",
        "client_order_id",
        "self_trade_prevention",
        "trigger_price",
        "user_id",
    }
)
CANCEL_FIELDS = frozenset({"market", "symbol", "order_id", "client_order_id", "user_id"})
TRANSFER_FIELDS = frozenset({"user_id", "asset", "amount"})


# --- money -------------------------------------------------------------------------------------


def decimal_value(value: Any, code: ErrorCode, name: str) -> Decimal:
    """An exact positive decimal, or RequestError(code)."""
    if (
        isinstance(value, Decimal)
        and value.is_finite()
        and abs(value.adjusted()) > _MAX_DECIMAL_EXPONENT
    ):
        raise fail(code, f"{name} is too large or too precise")
    try:
        number = parse_decimal(value)
    except MoneyError as exc:
        raise fail(code, f"{name} {exc}") from None
    if number <= 0:
        raise fail(code, f"{name} must be positive")
    return number


def price_ticks(market: Market, value: Any, name: str = "price") -> int:
    """A price (or ``trigger_price``) on the market's tick, in range."""
    price = decimal_value(value, ErrorCode.INVALID_PRICE, name)
    try:
        ticks = to_steps(price, market.tick_size)
    except MoneyError as exc:
        raise fail(ErrorCode.INVALID_PRICE, f"{name} {exc} (the tick size)") from None
    if ticks > market.max_ticks:
        raise fail(
            ErrorCode.INVALID_PRICE,
            f"{name} must be at most {market.format_price(market.max_ticks)}",
        )
    return ticks


def quantity_lots(market: Market, value: Any) -> int:
    quantity = decimal_value(value, ErrorCode.INVALID_QUANTITY, "quantity")
    try:
        lots = to_steps(quantity, market.lot_size)
    except MoneyError as exc:
        raise fail(ErrorCode.INVALID_QUANTITY, f"quantity {exc} (the lot size)") from None
    if not market.min_lots <= lots <= market.max_lots:
        raise fail(
            ErrorCode.INVALID_QUANTITY,
            f"quantity must be between {market.format_quantity(market.min_lots)} "
            f"and {market.format_quantity(market.max_lots)}",
        )
    return lots


def quote_units(market: Market, value: Any) -> int:
    amount = decimal_value(value, ErrorCode.INVALID_QUANTITY, "quote_quantity")
    try:
        units = market.quote.to_units(amount)
    except MoneyError:
        raise fail(
            ErrorCode.INVALID_QUANTITY,
            f"quote_quantity has more than {market.quote.decimals} decimals",
        ) from None
    if units > market.quote_units(market.max_ticks, market.max_lots):
        raise fail(ErrorCode.INVALID_QUANTITY, "quote_quantity is too large")
    return units


# --- commands ----------------------------------------------------------------------------------


def _enum(enum_type: type, value: Any, code: ErrorCode, name: str):
    try:
        return enum_type(value)
    except ValueError:
        choices = ", ".join(repr(item.value) for item in enum_type)
        raise fail(code, f"{name} must be one of {choices}") from None


def parse_order(config: MarketConfig, data: Any, *, user_id: str) -> PlaceOrder:
    """One order request (a JSON object) → :class:`PlaceOrder` for ``user_id``."""
    if not isinstance(data, dict):
        raise fail(ErrorCode.INVALID_REQUEST, "an order must be a JSON object")
    check_fields(data, ORDER_FIELDS)
    market = market_of(config, data)
    assert market is not None
    if "side" not in data:
        raise fail(ErrorCode.INVALID_SIDE, "side is required ('buy' or 'sell')")
    side = _enum(Side, data["side"], ErrorCode.INVALID_SIDE, "side")
    order_type = _enum(OrderType, data.get("type", "limit"), ErrorCode.INVALID_TYPE, "type")
    tif = _enum(
        TimeInForce,
        data.get("time_in_force", "GTC"),
        ErrorCode.INVALID_TIME_IN_FORCE,
        "time_in_force",
    )
    stp = _enum(
        SelfTradePrevention,
        data.get("self_trade_prevention", "cancel_taker"),
        ErrorCode.INVALID_ORDER,
        "self_trade_prevention",
    )
    post_only = data.get("post_only", False)
    if not isinstance(post_only, bool):
        raise fail(ErrorCode.INVALID_ORDER, "post_only must be true or false")
    client_order_id = data.get("client_order_id")
    if client_order_id is not None and (
        not isinstance(client_order_id, str)
        or not 0 < len(client_order_id) <= MAX_CLIENT_ORDER_ID_LENGTH
        or not client_order_id.isprintable()
    ):
        raise fail(
            ErrorCode.INVALID_CLIENT_ORDER_ID,
            "client_order_id must be a string of 1 to 36 printable characters",
        )
    price = data.get("price")
    quantity = data.get("quantity")
    quote_quantity = data.get("quote_quantity")
    trigger_price = data.get("trigger_price")
    if order_type is OrderType.LIMIT and price is None:
        raise fail(ErrorCode.INVALID_PRICE, "a limit order needs a price")
    if order_type is OrderType.MARKET and price is not None:
        raise fail(ErrorCode.INVALID_PRICE, "a market order takes no price")
    if quantity is None and quote_quantity is None:
        raise fail(ErrorCode.INVALID_QUANTITY, "quantity is required")
    command = PlaceOrder(
        user_id=user_id,
        market=market.symbol,
        side=side,
        type=order_type,
        price=None if price is None else price_ticks(market, price),
        quantity=None if quantity is None else quantity_lots(market, quantity),
        quote_quantity=None if quote_quantity is None else quote_units(market, quote_quantity),
        time_in_force=tif,
        post_only=post_only,
        client_order_id=client_order_id,
        self_trade_prevention=stp,
        trigger_price=(
            None if trigger_price is None else price_ticks(market, trigger_price, "trigger_price")
        ),
    )
    # The engine's own checks (exchange.validation), so a malformed order costs no round trip.
    rejection = validate_order(command, market)
    if rejection is None and command.trigger_price is not None:
        rejection = validate_trigger(command, market)
    if rejection is not None:
        raise fail(rejection.code, rejection.message)
    return command


def parse_order_list(data: Any) -> list[Any]:
    """The batch endpoint's body: a JSON list of 1 to 50 items (each parsed on its own)."""
    if not isinstance(data, list):
        raise fail(ErrorCode.INVALID_REQUEST, "the body must be a JSON list of orders")
    if not 1 <= len(data) <= MAX_BATCH_ORDERS:
        raise fail(ErrorCode.INVALID_REQUEST, f"a batch holds 1 to {MAX_BATCH_ORDERS} orders")
    return data


def no_such_order() -> RequestError:
    return fail(ErrorCode.ORDER_NOT_FOUND, "no such order")


def order_id_value(value: Any) -> int:
    """The engine order id a cancel or lookup names (the contract's string, or a JSON integer).

    An id string that cannot be an engine id (``"does-not-exist"``, ``"-1"``, 40 digits) names
    no order of the caller, which the contract answers 404, never 400: RequestError
    (ORDER_NOT_FOUND) without asking the engine. A value that is not an id at all (``true``,
    ``{}``, ``1.5``) is INVALID_REQUEST.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise fail(ErrorCode.INVALID_REQUEST, "order_id must be a string")
    if not _ORDER_ID.fullmatch(value) or int(value) > MAX_ORDER_ID:
        raise no_such_order()
    return int(value)


def client_order_id_reference(value: Any) -> str:
    """The ``client_order_id`` a cancel or lookup names: any string; one no order can have (empty,
    longer than 36) names none (RequestError(ORDER_NOT_FOUND)); a non-string is refused."""
    if not isinstance(value, str):
        raise fail(ErrorCode.INVALID_CLIENT_ORDER_ID, "client_order_id must be a string")
    if not 0 < len(value) <= MAX_CLIENT_ORDER_ID_LENGTH:
        raise no_such_order()
    return value


def order_reference(data: Mapping[str, Any]) -> tuple[int | None, str | None]:
    """``order_id`` or ``client_order_id`` (exactly one) of a cancel body or a lookup query."""
    order_id, client_order_id = data.get("order_id"), data.get("client_order_id")
    if (order_id is None) == (client_order_id is None):
        raise fail(ErrorCode.INVALID_REQUEST, "give exactly one of order_id or client_order_id")
    if order_id is not None:
        return order_id_value(order_id), None
    return None, client_order_id_reference(client_order_id)


def parse_cancel(config: MarketConfig, data: Any, *, user_id: str) -> CancelOrder:
    if not isinstance(data, dict):
        raise fail(ErrorCode.INVALID_REQUEST, "the body must be a JSON object")
    check_fields(data, CANCEL_FIELDS)
    market = market_of(config, data)
    assert market is not None
    order_id, client_order_id = order_reference(data)
    return CancelOrder(user_id, market.symbol, order_id, client_order_id)


def parse_cancel_all(config: MarketConfig, params: Mapping[str, str], *, user_id: str) -> CancelAll:
    market = market_of(config, params, required=False)
    return CancelAll(user_id, None if market is None else market.symbol)


def parse_transfer(config: MarketConfig, data: Any, *, withdraw: bool) -> Deposit | Withdraw:
    """An admin deposit or withdrawal body ``{"user_id", "asset", "amount"}``."""
    if not isinstance(data, dict):
        raise fail(ErrorCode.INVALID_REQUEST, "the body must be a JSON object")
    check_fields(data, TRANSFER_FIELDS)
    if "user_id" not in data:
        raise fail(ErrorCode.INVALID_REQUEST, "user_id is required")
    user_id = user_id_value(data["user_id"])
    asset = config.assets.get(data.get("asset")) if isinstance(data.get("asset"), str) else None
    if asset is None:
        raise fail(ErrorCode.INVALID_ASSET, f"unknown asset {data.get('asset')!r}")
    if "amount" not in data:
        raise fail(ErrorCode.INVALID_AMOUNT, "amount is required")
    amount = decimal_value(data["amount"], ErrorCode.INVALID_AMOUNT, "amount")
    try:
        units = asset.to_units(amount)
    except MoneyError:
        raise fail(
            ErrorCode.INVALID_AMOUNT, f"amount has more than {asset.decimals} decimals"
        ) from None
    if units >= 10**30:
        raise fail(ErrorCode.INVALID_AMOUNT, "amount is too large")
    return (Withdraw if withdraw else Deposit)(user_id, asset.name, units)
