"""The HTTP plumbing every route shares: the request record, responses, errors, limits, metrics.

Route handlers are plain ``async def handler(api, req) -> data`` functions of an :class:`Api`
(the program's shared state) and a :class:`Req` (what arrived); they return JSON-ready data (or
an :class:`Answer`) or raise. The :class:`Router` reads each request once, turns every refusal
into the contract's ``{"error": {"code", "message"}}`` with its status, and records the route's
count and latency. Keeping handlers free of any web framework keeps them easy to test and lets
another surface mount its own handlers on its own router.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import attrs
import orjson

from exchange.api import metrics
from exchange.api.auth import Authenticator, Caller, dev_caller
from exchange.api.backend import Backend
from exchange.api.ratelimit import TokenBucketLimiter, retry_after_header
from exchange.credentials import CredentialStore
from exchange.errors import EngineTimeout, ErrorCode, RequestError, ServiceUnavailable
from exchange.markets import MarketConfig
from exchange.settings import Settings

log = logging.getLogger("exchange.api")

JSON = "application/json"


@attrs.frozen
class Req:
    """One request as handlers see it."""

    method: str
    target: str  # path and query exactly as sent (what a signature covers)
    headers: Mapping[str, str]  # names in lower case
    params: dict[str, str]  # query string, first value of each name
    body: bytes
    remote: str


@attrs.define
class Api:
    """State shared by every request of one API process."""

    settings: Settings
    config: MarketConfig
    backend: Backend
    credentials: CredentialStore
    auth: Authenticator
    private_limiter: TokenBucketLimiter
    public_limiter: TokenBucketLimiter
    clock: Callable[[], float] = time.monotonic

    async def caller(self, req: Req, dev_user_id: Any = None) -> Caller:
        """Authenticate a private request and charge its rate-limit bucket one token."""
        if self.auth.dev:
            if dev_user_id is None:
                dev_user_id = req.params.get("user_id")
            caller = dev_caller(dev_user_id)
        else:
            caller = await self.auth.signed_caller(req.headers, req.method, req.target, req.body)
        self.charge(self.private_limiter, caller.rate_key)
        return caller

    def charge(self, limiter: TokenBucketLimiter, key: str, cost: float = 1.0) -> None:
        wait_s = limiter.take(key, self.clock(), cost)
        if wait_s > 0:
            raise RateLimited(wait_s)


class RateLimited(RequestError):
    def __init__(self, wait_s: float) -> None:
        super().__init__(ErrorCode.RATE_LIMITED, "too many requests; retry later")
        self.retry_after = retry_after_header(wait_s)


@attrs.frozen
class Answer:
    """A finished response: status, body bytes and any extra headers."""

    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()


def json_answer(data: Any, status: int = 200) -> Answer:
    return Answer(status, orjson.dumps(data))


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": str(code), "message": message}}


def error_answer(code: str, message: str, status: int, **headers: str) -> Answer:
    return Answer(status, orjson.dumps(error_body(code, message)), JSON, tuple(headers.items()))


def failure_answer(exc: BaseException) -> Answer:
    """The contract's rendering of anything a handler raised."""
    if isinstance(exc, RateLimited):
        return error_answer(exc.code, exc.message, 429, **{"Retry-After": exc.retry_after})
    if isinstance(exc, RequestError):
        return error_answer(exc.code, exc.message, exc.http_status)
    if isinstance(exc, EngineTimeout):
        return error_answer(
            ErrorCode.ENGINE_TIMEOUT,
            "the engine did not answer in time; the outcome is unknown "
            "(look the order up by client_order_id)",
            504,
        )
    if isinstance(exc, ServiceUnavailable):
        return error_answer(ErrorCode.SERVICE_UNAVAILABLE, f"a needed service is down: {exc}", 503)
    log.error("unhandled error", exc_info=exc)
    return error_answer("INTERNAL_ERROR", "internal error", 500)


Handler = Callable[[Api, Req], Awaitable[Any]]


class Router:
    """The API's routes, answered straight from ASGI.

    Quart's request machinery (contexts, werkzeug routing and wrappers, signals) cost about as
    much CPU per request as everything else in the API together; these handlers need none of it
    (they take a :class:`Req` and return data), so the app's ASGI entry answers them here and
    passes only what no route matches to Quart (404s, and later the static web page).
    """

    def __init__(self, api_of: Callable[[], Api], max_body_bytes: int) -> None:
        self.api_of = api_of
        self.max_body_bytes = max_body_bytes
        self.routes: dict[str, dict[str, tuple[Handler, bool]]] = {}

    def add(self, path: str, method: str, handler: Handler, *, public: bool = False) -> None:
        self.routes.setdefault(path, {})[method] = (handler, public)

    async def dispatch(self, scope: dict, receive: Any, send: Any) -> bool:
        """Answer ``scope`` if a route matches its path; False to let the app answer it."""
        path = scope["path"]
        methods = self.routes.get(path)
        if methods is None:
            return False
        started = time.perf_counter()
        method = scope["method"]
        route = methods.get(method)
        if route is None:
            allow = ", ".join(sorted(methods))
            answer = error_answer(
                ErrorCode.INVALID_REQUEST, f"{method} is not allowed here", 405, Allow=allow
            )
        else:
            body = await self._read_body(receive)
            if body is None:
                answer = error_answer(
                    ErrorCode.INVALID_REQUEST,
                    f"the body is larger than {self.max_body_bytes} bytes",
                    413,
                )
            else:
                answer = await self._answer(scope, method, body, *route)
        headers = [
            (b"content-type", answer.content_type.encode()),
            (b"content-length", str(len(answer.body)).encode()),
        ]
        headers.extend((name.encode(), value.encode()) for name, value in answer.headers)
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})
        metrics.observe(path, method, answer.status, time.perf_counter() - started)
        return True

    async def _read_body(self, receive: Any) -> bytes | None:
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away; answering it is harmless
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _answer(
        self, scope: dict, method: str, body: bytes, handler: Handler, public: bool
    ) -> Answer:
        api = self.api_of()
        client = scope.get("client")
        remote = client[0] if client else ""
        try:
            if public:
                api.charge(api.public_limiter, f"ip:{remote}")
            query = scope.get("query_string") or b""
            raw_path = scope.get("raw_path") or scope["path"].encode()
            params: dict[str, str] = {}
            if query:
                for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                    params.setdefault(name, value)
            req = Req(
                method=method,
                target=(raw_path + b"?" + query if query else raw_path).decode("latin-1"),
                headers={
                    name.decode("latin-1").lower(): value.decode("latin-1")
                    for name, value in scope["headers"]
                },
                params=params,
                body=body,
                remote=remote,
            )
            result = await handler(api, req)
            return result if isinstance(result, Answer) else json_answer(result)
        except Exception as exc:  # noqa: BLE001 - every failure becomes the contract's shape
            return failure_answer(exc)
