"""Trading on a native WebSocket connection: each method the twin of a REST endpoint.

``{"id", "method", "params"}`` with a method below is answered ``{"id", "result"}`` or
``{"id", "error"}``. Every method calls the same surface function as its REST route
(:mod:`exchange.surfaces.native.orders`) with the connection's caller, so parameters, result
shapes and error codes are the REST ones by construction; only the envelope differs. The
connection (:mod:`.ws_connection`) keeps one connection's commands in order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from exchange.codec import loads_exact
from exchange.errors import ErrorCode
from exchange.surfaces.commands import parse_order_list
from exchange.surfaces.native import orders
from exchange.surfaces.native.auth import Caller
from exchange.surfaces.native.errors import NATIVE_ERRORS
from exchange.surfaces.params import check_fields, fail
from exchange.surfaces.state import Api

MAX_ID_CHARS = 36
_MARKET = frozenset({"market", "symbol", "user_id"})
_LOOKUP = frozenset({"order_id", "client_order_id", "user_id"})
_NOTHING = frozenset({"user_id"})


async def _place_orders(api: Api, who: Caller, params: Mapping[str, Any]) -> Any:
    check_fields(params, frozenset({"orders", "user_id"}), where="params")
    return await orders.place_orders_as(api, who, parse_order_list(params.get("orders")))


def _checked(
    allowed: frozenset[str], call: Callable[[Api, Caller, Mapping[str, Any]], Awaitable[Any]]
) -> Callable[[Api, Caller, Mapping[str, Any]], Awaitable[Any]]:
    """``call`` after refusing a parameter its REST twin's query string would refuse."""

    async def checked(api: Api, who: Caller, params: Mapping[str, Any]) -> Any:
        check_fields(params, allowed, where="params")
        return await call(api, who, params)

    return checked


Method = Callable[[Api, Caller, Mapping[str, Any]], Awaitable[Any]]

METHODS: dict[str, Method] = {
    "order.place": orders.place_order_as,  # POST /api/v1/order
    "orders.place": _place_orders,  # POST /api/v1/orders
    "order.cancel": orders.cancel_order_as,  # DELETE /api/v1/order
    "orders.cancel_all": _checked(_MARKET, orders.cancel_orders_as),  # DELETE /api/v1/orders
    "order.status": _checked(_LOOKUP, orders.get_order_as),  # GET /api/v1/order
    "orders.open": _checked(_MARKET, orders.open_orders_as),  # GET /api/v1/order/open
    "balances.get": _checked(_NOTHING, lambda api, who, _p: orders.balances_as(api, who)),
}


def check_id(request_id: Any) -> None:
    """A trading request's id: an integer or a string of at most 36 characters."""
    if isinstance(request_id, str) and len(request_id) > MAX_ID_CHARS:
        raise fail(ErrorCode.INVALID_REQUEST, f"id must be at most {MAX_ID_CHARS} characters")


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_float(item) for item in value)
    return False


def exact_params(raw: str | bytes, params: Any) -> Any:
    """``params`` with every fractional number exact: orjson read it (fast, and the usual
    request sends strings); a frame holding a JSON fraction is read again as Decimals."""
    if not _has_float(params):
        return params
    return loads_exact(raw)["params"]


async def call(api: Api, who: Caller, method: str, params: Any) -> Any:
    """Run ``method`` for ``who``: charge its rate limit once (as its REST twin's
    :func:`~.auth.caller` does), then the surface function. Raises like the REST handler."""
    if not isinstance(params, dict):
        raise fail(ErrorCode.INVALID_REQUEST, "params must be a JSON object")
    api.charge(api.private_limiter, who.rate_key)
    return await METHODS[method](api, who, params)


def result_frame(request_id: Any, result: Any) -> bytes:
    return orjson.dumps({"id": request_id, "result": result})


def failure_frame(request_id: Any, exc: BaseException) -> bytes:
    """What the REST twin would answer, as an error frame."""
    code, message, _status = NATIVE_ERRORS.words(exc)
    return orjson.dumps({"id": request_id, "error": {"code": code, "message": message}})
