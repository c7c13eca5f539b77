"""The API's routes answered straight from ASGI: each request read once, answered in its surface's
shape, counted and timed.

Handlers are the surfaces' plain ``async def handler(api, req)`` functions
(:mod:`exchange.surfaces.http`); each route is added with its surface's error words
(:class:`~exchange.surfaces.failures.ErrorShape`), so a refusal on ``/backpack`` reads as
Backpack's and one on ``/api/v1`` as the contract's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from exchange.api import metrics
from exchange.errors import ErrorCode
from exchange.surfaces.failures import ErrorShape
from exchange.surfaces.http import Answer, Handler, Req, json_answer
from exchange.surfaces.native.errors import NATIVE_ERRORS
from exchange.surfaces.state import Api


def error_answer(code: str, message: str, status: int, **headers: str) -> Answer:
    """An error in the contract's shape (what the program itself answers: 404, 405, 413)."""
    return NATIVE_ERRORS.answer(code, message, status, **headers)


class Router:
    """The API's routes, answered straight from ASGI.

    Quart's request machinery (contexts, werkzeug routing and wrappers, signals) cost about as
    much CPU per request as everything else in the API together; these handlers need none of it
    (they take a :class:`Req` and return data), so the app's ASGI entry answers them here and
    passes only what no route matches to Quart (404s and the trading page).
    """

    def __init__(self, api_of: Callable[[], Api], max_body_bytes: int) -> None:
        self.api_of = api_of
        self.max_body_bytes = max_body_bytes
        self.routes: dict[str, dict[str, tuple[Handler, bool, ErrorShape]]] = {}

    def add(
        self,
        path: str,
        method: str,
        handler: Handler,
        *,
        public: bool = False,
        errors: ErrorShape = NATIVE_ERRORS,
    ) -> None:
        """Route ``method path`` to ``handler``; a public route is charged to the caller's IP."""
        self.routes.setdefault(path, {})[method] = (handler, public, errors)

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
        self,
        scope: dict,
        method: str,
        body: bytes,
        handler: Handler,
        public: bool,
        errors: ErrorShape,
    ) -> Answer:
        api = self.api_of()
        client = scope.get("client")
        remote = client[0] if client else ""
        try:
            if public:
                api.charge_public(remote)
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
        except Exception as exc:  # noqa: BLE001 - every failure becomes the surface's shape
            return errors.failure(exc)
