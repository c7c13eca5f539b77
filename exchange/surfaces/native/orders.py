"""Private endpoints: orders, cancels, open orders, lookups, history, fills, balances and the
ledger.

Every handler first learns who calls (:func:`.auth.caller`); a user only ever names their own
orders, because every command and query carries the caller's id and the engine and the history
queries match on it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from exchange.errors import ErrorCode, RequestError
from exchange.models import OrderView, PlaceOrder
from exchange.surfaces import limits
from exchange.surfaces.batch import place_batch
from exchange.surfaces.commands import (
    order_reference,
    parse_cancel,
    parse_cancel_all,
    parse_order,
    parse_order_list,
)
from exchange.surfaces.http import Req
from exchange.surfaces.native.auth import Caller, caller, dev_caller
from exchange.surfaces.native.errors import NATIVE_ERRORS
from exchange.surfaces.params import check_params, json_object, market_of, parse_json
from exchange.surfaces.state import Api
from exchange.views import balances_json, ledger_json, order_json

_USER = frozenset({"user_id"})
_MARKET = frozenset({"market", "symbol", "user_id"})
_MARKET_LIMIT = _MARKET | {"limit"}
_ASSET_LIMIT = frozenset({"asset", "limit", "user_id"})
_LOOKUP = frozenset({"order_id", "client_order_id", "user_id"})


def _order_out(api: Api, order: OrderView | dict) -> dict:
    return order if isinstance(order, dict) else order_json(api.config, order)


# --- what an authenticated caller asks: the REST routes and their WebSocket twins both call these
# (exchange.surfaces.native.ws_trading), so parsing and rendering exist once.


async def place_order_as(api: Api, who: Caller, data: Any) -> Any:
    """``POST /api/v1/order`` / ``order.place``: one order for ``who``."""
    command = parse_order(api.config, data, user_id=who.user_id)
    return order_json(api.config, await api.backend.place(command))


async def place_orders_as(api: Api, who: Caller | None, items: list[Any], dev_user_id: Any = None):
    """A batch: each item accepted or refused on its own, answered in the same order.

    ``who`` is the signed caller (charged one token already, the batch costs one per order); None
    in dev mode, where each item names its user (else ``dev_user_id``).
    """

    def parse(item: Any) -> PlaceOrder:
        if who is not None:
            user_id = who.user_id
        else:
            own = item.get("user_id") if isinstance(item, dict) else None
            user_id = dev_caller(own if own is not None else dev_user_id).user_id
        return parse_order(api.config, item, user_id=user_id)

    def charge(commands: list[PlaceOrder]) -> None:
        if who is not None:
            api.charge(api.private_limiter, who.rate_key, len(items) - 1)
        else:
            for user_id, count in Counter(command.user_id for command in commands).items():
                api.charge(api.private_limiter, f"user:{user_id}", count)

    return await place_batch(
        api.backend,
        items,
        parse=parse,
        charge=charge,
        render=lambda order: order_json(api.config, order),
        refused=NATIVE_ERRORS.item,
    )


async def cancel_order_as(api: Api, who: Caller, data: Any) -> Any:
    command = parse_cancel(api.config, data, user_id=who.user_id)
    return order_json(api.config, await api.backend.cancel(command))


async def cancel_orders_as(api: Api, who: Caller, params: Mapping[str, Any]) -> Any:
    command = parse_cancel_all(api.config, params, user_id=who.user_id)
    return [order_json(api.config, order) for order in await api.backend.cancel_all(command)]


async def open_orders_as(api: Api, who: Caller, params: Mapping[str, Any]) -> Any:
    market = market_of(api.config, params, required=False)
    orders = await api.backend.open_orders(who.user_id, market and market.symbol)
    return [order_json(api.config, order) for order in orders]


async def get_order_as(api: Api, who: Caller, params: Mapping[str, Any]) -> Any:
    order_id, client_order_id = order_reference(params)
    return _order_out(api, await api.backend.order(who.user_id, order_id, client_order_id))


async def balances_as(api: Api, who: Caller) -> Any:
    return balances_json(api.config, await api.backend.balances(who.user_id))


# --- the REST routes -----------------------------------------------------------------------------


async def place_order(api: Api, req: Req) -> Any:
    check_params(req.params, _USER)
    data = json_object(req.body)
    return await place_order_as(api, await caller(api, req, data.get("user_id")), data)


async def place_orders(api: Api, req: Req) -> Any:
    check_params(req.params, _USER)
    items = parse_order_list(parse_json(req.body))
    signed = None if api.dev_auth else await caller(api, req)
    return await place_orders_as(api, signed, items, req.params.get("user_id"))


def _body_or_params(req: Req) -> Any:
    """A DELETE's fields from its JSON body, or from the query string when it has none."""
    return json_object(req.body) if req.body.strip() else dict(req.params)


async def cancel_order(api: Api, req: Req) -> Any:
    data = _body_or_params(req)
    if req.body.strip():
        check_params(req.params, _USER)
    who = await caller(api, req, data.get("user_id") if isinstance(data, dict) else None)
    return await cancel_order_as(api, who, data)


async def cancel_orders(api: Api, req: Req) -> Any:
    check_params(req.params, _MARKET)
    return await cancel_orders_as(api, await caller(api, req), req.params)


async def open_orders(api: Api, req: Req) -> Any:
    check_params(req.params, _MARKET)
    return await open_orders_as(api, await caller(api, req), req.params)


async def get_order(api: Api, req: Req) -> Any:
    check_params(req.params, _LOOKUP)
    return await get_order_as(api, await caller(api, req), req.params)


async def _history_query(api: Api, req: Req) -> tuple[str, str | None, int]:
    """``(user_id, market or None, limit)`` of a caller's history request."""
    check_params(req.params, _MARKET_LIMIT)
    who = await caller(api, req)
    market = market_of(api.config, req.params, required=False)
    return who.user_id, market and market.symbol, limits.HISTORY.of(req.params)


async def order_history(api: Api, req: Req) -> Any:
    return await api.backend.history.order_history(*await _history_query(api, req))


async def fills(api: Api, req: Req) -> Any:
    return await api.backend.history.fills(*await _history_query(api, req))


async def ledger(api: Api, req: Req) -> Any:
    """The caller's balance movements, newest first (``asset`` optional)."""
    check_params(req.params, _ASSET_LIMIT)
    who = await caller(api, req)
    asset = req.params.get("asset")
    if asset is not None and asset not in api.config.assets:
        raise RequestError(ErrorCode.INVALID_ASSET, f"unknown asset {asset!r}")
    limit = limits.HISTORY.of(req.params)
    rows = await api.backend.history.ledger(who.user_id, asset, limit, list(api.config.assets))
    return ledger_json(api.config, rows)


async def balances(api: Api, req: Req) -> Any:
    check_params(req.params, _USER)
    return await balances_as(api, await caller(api, req))


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
    ("/api/v1/ledger", "GET", ledger),
]
