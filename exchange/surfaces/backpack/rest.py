"""The ``/backpack`` REST surface: Backpack's endpoints on the API's router and backend.

Each handler reads Backpack's request, builds the same engine commands and queries the native
routes build (through :class:`~exchange.surfaces.backend.Backend`), and answers in Backpack's
names and units (:mod:`.translate`). Private endpoints are always signed with ED25519
(:mod:`.signing`), whatever ``EXCHANGE_AUTH`` says; keys are registered through the admin API and
looked up in the shared credential store (which caches them). Every failure is answered as
Backpack does, ``{"code", "message"}`` with its HTTP status (:mod:`.errors`).
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

import trio

from exchange.credentials import check_ed25519_key
from exchange.errors import ErrorCode, RequestError
from exchange.models import OrderStatus, OrderView, PlaceOrder
from exchange.surfaces import limits
from exchange.surfaces.backpack import signing, translate
from exchange.surfaces.backpack.errors import BACKPACK_ERRORS
from exchange.surfaces.batch import place_batch
from exchange.surfaces.commands import order_id_value, parse_cancel, parse_cancel_all
from exchange.surfaces.failures import ErrorShape, SurfaceRefusal
from exchange.surfaces.http import Handler, Req
from exchange.surfaces.limits import limit_param
from exchange.surfaces.params import INTERVALS, market_of, parse_json
from exchange.surfaces.state import Api
from exchange.views import balances_json

PREFIX = "/backpack"
ERRORS: ErrorShape = BACKPACK_ERRORS


def _refusal(exc: signing.Ed25519SignatureError) -> SurfaceRefusal:
    status = 400 if exc.code == "INVALID_CLIENT_REQUEST" else 401
    return SurfaceRefusal(exc.code, exc.message, status)


def _placed_json(api: Api, view: OrderView) -> dict[str, Any]:
    """A placed order in Backpack's shape; a refused post-only is an error there (Backpack has
    no "Rejected" status). Raises RequestError(INVALID_ORDER)."""
    if view.status is OrderStatus.REJECTED:
        raise RequestError(ErrorCode.INVALID_ORDER, "a post-only order would have taken")
    return translate.order_json(api.config, view)


class BackpackRest:
    """The surface's handlers."""

    @staticmethod
    def _canonical(key_b64: str) -> str:
        try:
            return check_ed25519_key(key_b64)
        except RequestError:
            raise signing.Ed25519SignatureError(
                "UNAUTHORIZED", "X-API-Key is not an ED25519 key"
            ) from None

    async def caller(self, api: Api, req: Req, instruction_of: str, params: Any) -> str:
        """The user who signed ``req``; charges the private rate limit. Raises SurfaceRefusal."""
        try:
            return await self._signer(api, req, instruction_of, params)
        except signing.Ed25519SignatureError as exc:
            raise _refusal(exc) from None

    async def _signer(self, api: Api, req: Req, instruction_of: str, params: Any) -> str:
        headers = req.headers
        key_b64 = headers.get("x-api-key")
        if not key_b64:
            raise signing.Ed25519SignatureError(
                "UNAUTHORIZED", "X-API-Key, X-Signature and X-Timestamp needed"
            )
        window_raw = headers.get("x-window")
        window = signing.parse_window(window_raw)
        timestamp = headers.get("x-timestamp")
        signing.check_timestamp(timestamp, api.clock_ms(), window)
        signature = signing.decode_signature(headers.get("x-signature"))
        canonical = self._canonical(key_b64)
        user_id = await api.credentials.ed25519_user(canonical)
        if user_id is None:
            raise signing.Ed25519SignatureError("UNAUTHORIZED", "unknown API key")
        key = signing.public_key(canonical)
        instruction = signing.INSTRUCTIONS[(instruction_of, req.method)]
        assert timestamp is not None
        texts = signing.signing_texts(instruction, params, timestamp, window_raw or str(window))
        if not signing.verify_any(key, signature, texts):
            raise signing.Ed25519SignatureError("INVALID_SIGNATURE", "the signature does not match")
        api.charge(api.private_limiter, f"ed25519:{key_b64}")
        return user_id

    @staticmethod
    def _body(req: Req) -> Any:
        return parse_json(req.body) if req.body.strip() else dict(req.params)

    # --- public --------------------------------------------------------------------------------

    async def assets(self, api: Api, req: Req) -> Any:
        return translate.assets_json(api.config)

    async def markets(self, api: Api, req: Req) -> Any:
        return [translate.market_json(m) for m in api.config.markets.values()]

    async def market(self, api: Api, req: Req) -> Any:
        return translate.market_json(market_of(api.config, req.params))

    async def securities(self, api: Api, req: Req) -> Any:
        return []

    async def time(self, api: Api, req: Req) -> Any:
        return api.clock_ms()

    async def status(self, api: Api, req: Req) -> Any:
        return {"status": "Ok"}

    async def depth(self, api: Api, req: Req) -> Any:
        market = market_of(api.config, req.params)
        limit = None
        if "limit" in req.params:
            limit = limit_param(
                req.params, default=limits.DEPTH.maximum, maximum=limits.DEPTH.maximum
            )
        return translate.depth_json(api.config, await api.backend.depth(market.symbol, limit))

    async def trades(self, api: Api, req: Req) -> Any:
        market = market_of(api.config, req.params)
        limit = limits.TRADES.of(req.params)
        rows = await api.backend.history.recent_trades(market.symbol, limit)
        return [translate.trade_json(row) for row in reversed(rows)]  # oldest first

    async def klines(self, api: Api, req: Req) -> Any:
        market = market_of(api.config, req.params)
        interval = req.params.get("interval")
        if interval not in INTERVALS:
            raise translate.refuse(f"interval must be one of {', '.join(INTERVALS)}")
        start, end = (_seconds(req.params, name) for name in ("startTime", "endTime"))
        rows = await api.backend.history.klines(
            market.symbol, interval, start, end, limits.KLINES.maximum
        )
        return [translate.kline_json(row) for row in rows]

    async def ticker(self, api: Api, req: Req) -> Any:
        market = market_of(api.config, req.params)
        (one,) = await api.backend.history.tickers([market.symbol])
        return translate.ticker_json(one)

    async def tickers(self, api: Api, req: Req) -> Any:
        rows = await api.backend.history.tickers(list(api.config.markets))
        return [translate.ticker_json(row) for row in rows]

    # --- private -------------------------------------------------------------------------------

    async def capital(self, api: Api, req: Req) -> Any:
        user_id = await self.caller(api, req, "/api/v1/capital", req.params)
        balances = await api.backend.balances(user_id)
        return translate.capital_json(balances_json(api.config, balances))

    async def place_order(self, api: Api, req: Req) -> Any:
        data = parse_json(req.body)
        user_id = await self.caller(api, req, "/api/v1/order", data)
        view = await api.backend.place(translate.order_request(api.config, data, user_id=user_id))
        return _placed_json(api, view)

    async def place_orders(self, api: Api, req: Req) -> Any:
        """A batch: each item placed or refused on its own, answered in the same order."""
        items = parse_json(req.body)
        most = limits.MAX_BATCH_ORDERS
        if not isinstance(items, list) or not 1 <= len(items) <= most:
            raise translate.refuse(f"the body must be a list of 1 to {most} orders")
        user_id = await self.caller(api, req, "/api/v1/orders", items)

        def parse(item: Any) -> PlaceOrder:
            return translate.order_request(api.config, item, user_id=user_id)

        def charge(commands: list[PlaceOrder]) -> None:
            # one token was charged by caller(); the batch costs one per order
            api.charge(api.private_limiter, f"ed25519:{req.headers['x-api-key']}", len(items) - 1)

        return await place_batch(
            api.backend,
            items,
            parse=parse,
            charge=charge,
            render=lambda view: _placed_json(api, view),
            refused=ERRORS.item,
        )

    async def cancel_order(self, api: Api, req: Req) -> Any:
        data = self._body(req)
        user_id = await self.caller(api, req, "/api/v1/order", data)
        order_id, client_id = _reference(data)
        native = {"market": data.get("symbol"), "order_id": order_id, "client_order_id": client_id}
        native = {k: v for k, v in native.items() if v is not None}
        command = parse_cancel(api.config, native, user_id=user_id)
        return translate.order_json(api.config, await api.backend.cancel(command))

    async def cancel_orders(self, api: Api, req: Req) -> Any:
        data = self._body(req)
        user_id = await self.caller(api, req, "/api/v1/orders", data)
        if not isinstance(data, dict) or "symbol" not in data:
            raise RequestError(ErrorCode.INVALID_MARKET, "symbol is required")
        command = parse_cancel_all(api.config, {"symbol": data["symbol"]}, user_id=user_id)
        orders = await api.backend.cancel_all(command)
        return [translate.order_json(api.config, order) for order in orders]

    async def open_orders(self, api: Api, req: Req) -> Any:
        user_id = await self.caller(api, req, "/api/v1/orders", req.params)
        market = market_of(api.config, req.params, required=False)
        orders = await api.backend.open_orders(user_id, market and market.symbol)
        return [translate.order_json(api.config, order) for order in orders]

    async def get_order(self, api: Api, req: Req) -> Any:
        user_id = await self.caller(api, req, "/api/v1/order", req.params)
        order_id, client_id = _reference(req.params)
        market = market_of(api.config, req.params, required=False)
        order = await api.backend.order(user_id, order_id, client_id)
        found = translate.order_json(api.config, order)
        if market is not None and found["symbol"] != market.symbol:
            raise RequestError(ErrorCode.ORDER_NOT_FOUND, "no such order in that market")
        return found

    async def order_history(self, api: Api, req: Req) -> Any:
        """Open and closed orders, newest first (one order when ``orderId`` is given)."""
        params = req.params
        user_id = await self.caller(api, req, "/wapi/v1/history/orders", params)
        market = market_of(api.config, params, required=False)
        symbol = market and market.symbol
        if "orderId" in params:
            try:
                order = await api.backend.order(user_id, order_id_value(params["orderId"]), None)
            except RequestError as exc:
                if exc.code is ErrorCode.ORDER_NOT_FOUND:
                    return []
                raise
            found = translate.order_json(api.config, order)
            return [found] if symbol is None or found["symbol"] == symbol else []
        limit, maximum = limits.HISTORY.of(params), limits.HISTORY.maximum
        offset = _offset(params)
        async with trio.open_nursery() as nursery:
            got: dict[str, list] = {}

            async def load(name: str, fetch: Awaitable[list]) -> None:
                got[name] = await fetch

            nursery.start_soon(load, "open", api.backend.open_orders(user_id, symbol))
            nursery.start_soon(
                load,
                "closed",
                api.backend.history.order_history(user_id, symbol, min(limit + offset, maximum)),
            )
        orders = [translate.order_json(api.config, o) for o in got["open"] + got["closed"]]
        orders.sort(key=lambda o: (o["createdAt"], int(o["id"])), reverse=True)
        return orders[offset : offset + limit]

    async def fills(self, api: Api, req: Req) -> Any:
        params = req.params
        user_id = await self.caller(api, req, "/wapi/v1/history/fills", params)
        market = market_of(api.config, params, required=False)
        limit, maximum = limits.HISTORY.of(params), limits.HISTORY.maximum
        since, until = _ms(params, "from"), _ms(params, "to")
        order_id = params.get("orderId")
        rows = await api.backend.history.fills(user_id, market and market.symbol, maximum)
        out = [
            translate.fill_json(api.config, row)
            for row in rows
            if (since is None or row["timestamp"] >= since)
            and (until is None or row["timestamp"] <= until)
            and (order_id is None or row["order_id"] == order_id)
        ]
        return out[:limit]

    def routes(self) -> list[tuple[str, str, Handler, bool]]:
        """``(path under /backpack, method, handler, public)`` of every endpoint."""
        public = [
            ("/api/v1/assets", self.assets),
            ("/api/v1/markets", self.markets),
            ("/api/v1/market", self.market),
            ("/api/v1/securities", self.securities),
            ("/api/v1/time", self.time),
            ("/api/v1/status", self.status),
            ("/api/v1/depth", self.depth),
            ("/api/v1/trades", self.trades),
            ("/api/v1/klines", self.klines),
            ("/api/v1/ticker", self.ticker),
            ("/api/v1/tickers", self.tickers),
        ]
        private = [
            ("/api/v1/capital", "GET", self.capital),
            ("/api/v1/order", "POST", self.place_order),
            ("/api/v1/orders", "POST", self.place_orders),
            ("/api/v1/order", "DELETE", self.cancel_order),
            ("/api/v1/orders", "DELETE", self.cancel_orders),
            ("/api/v1/orders", "GET", self.open_orders),
            ("/api/v1/order", "GET", self.get_order),
            ("/wapi/v1/history/orders", "GET", self.order_history),
            ("/wapi/v1/history/fills", "GET", self.fills),
        ]
        return [(path, "GET", handler, True) for path, handler in public] + [
            (path, method, handler, False) for path, method, handler in private
        ]


def _reference(data: Any) -> tuple[int | None, str | None]:
    """``orderId`` or ``clientId`` (exactly one) of a cancel body or a lookup query."""
    if not isinstance(data, dict):
        raise translate.refuse("the body must be a JSON object")
    order_id, client_id = data.get("orderId"), data.get("clientId")
    if (order_id is None) == (client_id is None):
        raise translate.refuse("give exactly one of orderId or clientId")
    if order_id is not None:
        return order_id_value(order_id), None
    return None, translate.client_id_reference(client_id)


def _number(params: dict[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 16):
        raise translate.refuse(f"{name} must be a non-negative integer")
    return int(raw)


def _seconds(params: dict[str, str], name: str) -> datetime | None:
    value = _number(params, name)
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise translate.refuse(f"{name} is out of range") from None


def _ms(params: dict[str, str], name: str) -> int | None:
    return _number(params, name)


def _offset(params: dict[str, str]) -> int:
    offset = _number(params, "offset") or 0
    if offset > 10_000:
        raise translate.refuse("offset must be at most 10000")
    return offset
