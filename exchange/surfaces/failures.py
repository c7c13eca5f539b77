"""The error ladder every surface answers with, driven by that surface's code map.

Whatever a handler raises becomes one answer, in this order: a refusal already in the surface's
own words (:class:`SurfaceRefusal`), a rate limit (429 with ``Retry-After``), any other
:class:`~exchange.errors.RequestError`, an engine timeout (504: outcome unknown), a service that
is down (503), and anything else (500, logged). A surface says only how its codes and bodies
read (:class:`ErrorShape`); the ladder, and so which failure wins, is the same for all.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import attrs
import orjson

from exchange.errors import EngineTimeout, ErrorCode, RequestError, ServiceUnavailable
from exchange.surfaces.http import JSON, Answer


class RateLimited(RequestError):
    """A bucket is empty; ``retry_after`` is the ``Retry-After`` header's value."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(ErrorCode.RATE_LIMITED, "too many requests; retry later")
        self.retry_after = retry_after_header(wait_s)


class SurfaceRefusal(Exception):
    """A refusal a surface words itself (a code outside :class:`~exchange.errors.ErrorCode`,
    such as Backpack's ``INVALID_SIGNATURE``), answered as it stands."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def retry_after_header(wait_s: float) -> str:
    """``Retry-After`` is whole seconds; round up so a client that obeys it succeeds."""
    return str(max(1, math.ceil(wait_s)))


@attrs.frozen
class ErrorShape:
    """How one surface words a failure: its code map and its error body."""

    code_of: Callable[[ErrorCode], tuple[str, int]]  # native code → (surface code, HTTP status)
    body: Callable[[str, str], dict[str, Any]]  # (code, message) → the error object
    timeout_message: str
    internal_code: str
    log: logging.Logger

    def answer(self, code: str, message: str, status: int, **headers: str) -> Answer:
        return Answer(status, orjson.dumps(self.body(code, message)), JSON, tuple(headers.items()))

    def item(self, exc: RequestError) -> dict[str, Any]:
        """A refused item of a batch, in the surface's error object."""
        return self.body(self.code_of(exc.code)[0], exc.message)

    def words(self, exc: BaseException) -> tuple[str, str, int]:
        """``(code, message, status)`` of anything a handler raised: the ladder, once (REST
        answers them as HTTP, the WebSocket twins as error frames)."""
        if isinstance(exc, SurfaceRefusal):
            return exc.code, exc.message, exc.status
        if isinstance(exc, RequestError):
            code, status = self.code_of(exc.code)
            return code, exc.message, status
        if isinstance(exc, EngineTimeout):
            code, status = self.code_of(ErrorCode.ENGINE_TIMEOUT)
            return code, self.timeout_message, status
        if isinstance(exc, ServiceUnavailable):
            code, status = self.code_of(ErrorCode.SERVICE_UNAVAILABLE)
            return code, f"a needed service is down: {exc}", status
        self.log.error("unhandled error", exc_info=exc)
        return self.internal_code, "internal error", 500

    def failure(self, exc: BaseException) -> Answer:
        """The surface's rendering of anything a handler raised."""
        code, message, status = self.words(exc)
        if isinstance(exc, RateLimited):
            return self.answer(code, message, status, **{"Retry-After": exc.retry_after})
        return self.answer(code, message, status)
