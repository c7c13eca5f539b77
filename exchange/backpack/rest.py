"""The ``/backpack`` REST surface: Backpack's endpoints on the API's router and backend.

Each handler reads Backpack's request, builds the same engine commands and queries the native
routes build (through :class:`~exchange.api.backend.Backend`), and answers in Backpack's names
and units (:mod:`exchange.backpack.translate`). Private endpoints are always signed with ED25519
(:mod:`exchange.backpack.signing`), whatever ``EXCHANGE_AUTH`` says; keys are registered through
the admin API and looked up in the shared credential store (cached: keys are never revoked).
Every failure is answered as Backpack does, ``{"code", "message"}`` with its HTTP status.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from exchange.api.auth import wall_clock_ms
from exchange.api.common import Answer, Api, RateLimited, Req, Router, json_answer
from exchange.api.parsing import (
    INTERVALS,
    limit_param,
    market_of,
    order_id_value,
    parse_cancel,
    parse_cancel_all,
    parse_json,
)
from exchange.backpack import signing, translate
from exchange.backpack.signing import SignatureError
from exchange.credentials import check_ed25519_key
from exchange.errors import EngineTimeout, ErrorCode, RequestError, ServiceUnavailable
from exchange.models import OrderStatus, OrderView, PlaceOrder, Rejection
from exchange.views import balances_json

log = logging.getLogger("exchange.backpack")

PREFIX = "/backpack"
TRADES_LIMIT = (100, 1000)
HISTORY_LIMIT = (100, 1000)
KLINES_LIMIT = 1000
DEPTH_MAX = 5000
MAX_BATCH_ORDERS = 50
_KEY_CACHE_SIZE = 100_000

Handler = Callable[[Api, Req], Awaitable[Any]]


def _answer(code: str, message: str, status: int, headers: tuple = ()) -> Answer:
    return Answer(status, json_answer(translate.error_json(code, message)).body, headers=headers)


def failure(exc: BaseException) -> Answer:
    """Backpack's rendering of anything a handler raised."""
    if isinstance(exc, SignatureError):
        return _answer(exc.code, exc.message, 400 if exc.code == "INVALID_CLIENT_REQUEST" else 401)
    if isinstance(exc, RateLimited):
        return _answer("TOO_MANY_REQUESTS", exc.message, 429, (("Retry-After", exc.retry_after),))
    if isinstance(exc, RequestError):
        code, status = translate.error_code(exc.code)
        return _answer(code, exc.message, status)
    if isinstance(exc, EngineTimeout):
        return _answer("TIMEOUT", "the engine did not answer in time; the outcome is unknown", 504)
    if isinstance(exc, ServiceUnavailable):
        return _answer("TRADING_PAUSED", f"a needed service is down: {exc}", 503)
    log.error("unhandled error", exc_info=exc)
    return _answer("SERVER_ERROR", "internal error", 500)


def _rejected_post_only(view: OrderView) -> RequestError | None:
    if view.status is OrderStatus.REJECTED:
        return RequestError(ErrorCode.INVALID_ORDER, "a post-only order would have taken")
    return None


class BackpackRest:
    """The surface's handlers and its key cache."""

    def __init__(self, clock_ms: Callable[[], int] = wall_clock_ms) -> None:
        self.clock_ms = clock_ms
        self._keys: OrderedDict[str, tuple[str, Ed25519PublicKey]] = OrderedDict()

    # --- plumbing ------------------------------------------------------------------------------

    def _wrap(self, handler: Handler, *, public: bool) -> Handler:
        async def wrapped(api: Api, req: Req) -> Any:
            try:
                if public:
                    api.charge(api.public_limiter, f"ip:{req.remote}")
                result = await handler(api, req)
            except Exception as exc:  # noqa: BLE001 - every failure becomes Backpack's shape
                return failure(exc)
            return result if isinstance(result, Answer) else json_answer(result)

        return wrapped

    def mount(self, router: Router) -> None:
        for path, method, handler, public in self.routes():
            router.add(PREFIX + path, method, self._wrap(handler, public=public))

    async def user_for_key(self, api: Api, key_b64: str) -> tuple[str, Ed25519PublicKey]:
        found = self._keys.get(key_b64)
        if found is not None:
            return found
        try:
            canonical = check_ed25519_key(key_b64)
        except RequestError:
            raise SignatureError("UNAUTHORIZED", "X-API-Key is not an ED25519 key") from None
        user_id = await api.credentials.user_for_ed25519(canonical)
        if user_id is None:
            raise SignatureError("UNAUTHORIZED", "unknown API key")
        found = (user_id, signing.public_key(canonical))
        self._keys[key_b64] = found
        if len(self._keys) > _KEY_CACHE_SIZE:
            self._keys.popitem(last=False)
        return found

    async def caller(self, api: Api, req: Req, instruction_of: str, params: Any) -> str:
        """The user who signed ``req``; charges the private rate limit. Raises SignatureError."""
        headers = req.headers
        key_b64 = headers.get("x-api-key")
        if not key_b64:
            raise SignatureError("UNAUTHORIZED", "X-API-Key, X-Signature and X-Timestamp needed")
        window_raw = headers.get("x-window")
        window = signing.parse_window(window_raw)
        timestamp = headers.get("x-timestamp")
        signing.check_timestamp(timestamp, self.clock_ms(), window)
        signature = signing.decode_signature(headers.get("x-signature"))
        user_id, key = await self.user_for_key(api, key_b64)
        instruction = signing.INSTRUCTIONS[(instruction_of, req.method)]
        assert timestamp is not None
        texts = signing.signing_texts(instruction, params, timestamp, window_raw or str(window))
        if not signing.verify_any(key, signature, texts):
            raise SignatureError("INVALID_SIGNATURE", "the signature does not match")
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
        return self.clock_ms()

    async def status(self, api: Api, req: Req) -> Any:
        return {"status": "Ok"}

    async def depth(self, api: Api, req: Req) -> Any:
        market = market_of(api.config, req.params)
        limit = None
        if "limit" in req.params:
            limit = limit_param(req.params, default=DEPTH_MAX, maximum=DEPTH_MAX)
        return translate.depth_json(api.config, await api.backend.depth(market.symbol, limit))

    async def trades(self, api: Api, req: Req) -> Any:
        market = market_of(api.config, req.params)
        default, maximum = TRADES_LIMIT
        limit = limit_param(req.params, default=default, maximum=maximum)
        rows = await api.backend.history.recent_trades(market.symbol, limit)
        return [translate.trade_json(row) for row in reversed(rows)]  # oldest first

    async def klines(self, api: Api, req: Req) -> Any:
        market = market_of(api.config, req.params)
        interval = req.params.get("interval")
        if interval not in INTERVALS:
            raise translate.refuse(f"interval must be one of {', '.join(INTERVALS)}")
        start, end = (_seconds(req.params, name) for name in ("startTime", "endTime"))
        rows = await api.backend.history.klines(market.symbol, interval, start, end, KLINES_LIMIT)
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
        refused = _rejected_post_only(view)
        if refused is not None:
            raise refused
        return translate.order_json(api.config, view)

    async def place_orders(self, api: Api, req: Req) -> Any:
        """A batch: each item placed or refused on its own, answered in the same order."""
        items = parse_json(req.body)
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH_ORDERS:
            raise translate.refuse(f"the body must be a list of 1 to {MAX_BATCH_ORDERS} orders")
        user_id = await self.caller(api, req, "/api/v1/orders", items)
        api.charge(api.private_limiter, f"ed25519:{req.headers['x-api-key']}", len(items) - 1)
        results: list[Any] = [None] * len(items)
        commands: list[PlaceOrder] = []
        slots: list[int] = []
        for index, item in enumerate(items):
            try:
                commands.append(translate.order_request(api.config, item, user_id=user_id))
                slots.append(index)
            except RequestError as exc:
                results[index] = _error_item(exc)
        for index, reply in zip(slots, await api.backend.place_many(commands), strict=True):
            if isinstance(reply, Rejection):
                results[index] = _error_item(RequestError(reply.code, reply.message))
            elif (refused := _rejected_post_only(reply)) is not None:
                results[index] = _error_item(refused)
            else:
                results[index] = translate.order_json(api.config, reply)
        return results

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
        default, maximum = HISTORY_LIMIT
        limit = limit_param(params, default=default, maximum=maximum)
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
        default, maximum = HISTORY_LIMIT
        limit = limit_param(params, default=default, maximum=maximum)
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


def _error_item(exc: RequestError) -> dict[str, str]:
    return translate.error_json(translate.error_code(exc.code)[0], exc.message)


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
