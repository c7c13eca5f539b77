"""Private endpoints: orders, cancels, open orders, lookups, history, fills and balances.

Every handler first learns who calls (:meth:`Api.caller`); a user only ever names their own
orders, because every command and query carries the caller's id and the engine and the history
queries match on it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from exchange.api.auth import dev_caller
from exchange.api.common import Api, Req, error_body
from exchange.api.parsing import (
    check_params,
    json_object,
    limit_param,
    market_of,
    order_reference,
    parse_cancel,
    parse_cancel_all,
    parse_json,
    parse_order,
    parse_order_list,
)
from exchange.errors import RequestError
from exchange.models import OrderView, PlaceOrder, Rejection
from exchange.views import balances_json, order_json

_USER = frozenset({"user_id"})
_MARKET = frozenset({"market", "symbol", "user_id"})
_MARKET_LIMIT = _MARKET | {"limit"}
_LOOKUP = frozenset({"order_id", "client_order_id", "user_id"})
HISTORY_LIMIT = (100, 1000)


def _order_out(api: Api, order: OrderView | dict) -> dict:
    return order if isinstance(order, dict) else order_json(api.config, order)


async def place_order(api: Api, req: Req) -> Any:
    check_params(req.params, _USER)
    data = json_object(req.body)
    caller = await api.caller(req, data.get("user_id"))
    command = parse_order(api.config, data, user_id=caller.user_id)
    return order_json(api.config, await api.backend.place(command))


async def place_orders(api: Api, req: Req) -> Any:
    """A batch: each item accepted or refused on its own, answered in the same order."""
    check_params(req.params, _USER)
    items = parse_order_list(parse_json(req.body))
    results: list[Any] = [None] * len(items)
    commands: list[PlaceOrder] = []
    slots: list[int] = []
    signed = None if api.auth.dev else await api.caller(req)
    for index, item in enumerate(items):
        try:
            if signed is not None:
                user_id = signed.user_id
            else:
                own = item.get("user_id") if isinstance(item, dict) else None
                user_id = dev_caller(own if own is not None else req.params.get("user_id")).user_id
            commands.append(parse_order(api.config, item, user_id=user_id))
            slots.append(index)
        except RequestError as exc:
            results[index] = error_body(exc.code, exc.message)
    if signed is not None:
        # one token was charged by caller(); the batch costs one per order
        api.charge(api.private_limiter, signed.rate_key, max(0, len(items) - 1))
    else:
        for user_id, count in Counter(command.user_id for command in commands).items():
            api.charge(api.private_limiter, f"user:{user_id}", count)
    for index, reply in zip(slots, await api.backend.place_many(commands), strict=True):
        if isinstance(reply, Rejection):
            results[index] = error_body(reply.code, reply.message)
        else:
            results[index] = order_json(api.config, reply)
    return results


def _body_or_params(req: Req) -> Any:
    """A DELETE's fields from its JSON body, or from the query string when it has none."""
    return json_object(req.body) if req.body.strip() else dict(req.params)


async def cancel_order(api: Api, req: Req) -> Any:
    data = _body_or_params(req)
    if req.body.strip():
        check_params(req.params, _USER)
    caller = await api.caller(req, data.get("user_id") if isinstance(data, dict) else None)
    command = parse_cancel(api.config, data, user_id=caller.user_id)
    return order_json(api.config, await api.backend.cancel(command))


async def cancel_orders(api: Api, req: Req) -> Any:
    check_params(req.params, _MARKET)
    caller = await api.caller(req)
    command = parse_cancel_all(api.config, req.params, user_id=caller.user_id)
    return [order_json(api.config, order) for order in await api.backend.cancel_all(command)]


async def open_orders(api: Api, req: Req) -> Any:
    check_params(req.params, _MARKET)
    caller = await api.caller(req)
    market = market_of(api.config, req.params, required=False)
    orders = await api.backend.open_orders(caller.user_id, market and market.symbol)
    return [order_json(api.config, order) for order in orders]


async def get_order(api: Api, req: Req) -> Any:
    check_params(req.params, _LOOKUP)
    caller = await api.caller(req)
    order_id, client_order_id = order_reference(req.params)
    return _order_out(api, await api.backend.order(caller.user_id, order_id, client_order_id))


async def _history_query(api: Api, req: Req) -> tuple[str, str | None, int]:
    """``(user_id, market or None, limit)`` of a caller's history request."""
    check_params(req.params, _MARKET_LIMIT)
    caller = await api.caller(req)
    market = market_of(api.config, req.params, required=False)
    default, maximum = HISTORY_LIMIT
    limit = limit_param(req.params, default=default, maximum=maximum)
    return caller.user_id, market and market.symbol, limit


async def order_history(api: Api, req: Req) -> Any:
    return await api.backend.history.order_history(*await _history_query(api, req))


async def fills(api: Api, req: Req) -> Any:
    return await api.backend.history.fills(*await _history_query(api, req))


async def balances(api: Api, req: Req) -> Any:
    check_params(req.params, _USER)
    caller = await api.caller(req)
    return balances_json(api.config, await api.backend.balances(caller.user_id))


ROUTES = [
    ("/api/v1/order", "POST", place_order),
    ("/api/v1/orders", "POST", place_orders),
    ("/api/v1/order", "DELETE", cancel_order),
    ("/api/v1/orders", "DELETE", cancel_orders),
    ("/api/v1/order/open", "GET", open_orders),
    ("/api/v1/order", "GET", get_order),
    ("/api/v1/orders/history", "GET", order_history),
    ("/api/v1/fills", "GET", fills),
    ("/api/v1/balances", "GET", balances),
]
