"""Error codes and the exception tree.

Rejections of user input are *values*: an :class:`ErrorCode` travels in replies and becomes the
contract's ``{"error": {"code", "message"}}``. Exceptions are for bugs, infrastructure and the
refusals an edge raises on its way out::

    ExchangeError
    ├── ConfigError          settings or market configuration is invalid
    ├── RequestError         an edge refused input (carries an ErrorCode and HTTP status)
    │   └── RateLimited      a rate-limit bucket is empty (exchange.surfaces.failures)
    ├── ServiceUnavailable   Redis, PostgreSQL or the engine cannot be reached
    ├── EngineTimeout        the engine did not answer in time (outcome unknown)
    ├── LogRolledBack        the command log lost entries the engine applied (engine.service)
    ├── UnrecoverableLog     the command log cannot be replayed (engine.service)
    └── MigrationError       a schema migration failed (db.migrate)

Refusals in a surface's own words, outside the tree (each caught and answered by its surface)::

    SurfaceRefusal           a code outside ErrorCode, answered as is (surfaces.failures)
    HmacSignatureError       a native signature, timestamp or window (surfaces.native.signing)
    Ed25519SignatureError    a Backpack signature, key, timestamp or window
                             (surfaces.backpack.signing)
    WindowRefused            a timestamp outside its window (surfaces.signing_window)
    ProtocolError            a WebSocket frame refused, native protocol (ws.protocol)
    Refused                  a WebSocket request refused, Backpack protocol (backpack.connection)
"""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    """The contract's error codes (``UPPER_SNAKE``)."""

    INVALID_MARKET = "INVALID_MARKET"
    INVALID_PRICE = "INVALID_PRICE"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    INVALID_ASSET = "INVALID_ASSET"
    INVALID_ORDER = "INVALID_ORDER"
    INVALID_SIDE = "INVALID_SIDE"
    INVALID_TYPE = "INVALID_TYPE"
    INVALID_TIME_IN_FORCE = "INVALID_TIME_IN_FORCE"
    INVALID_CLIENT_ORDER_ID = "INVALID_CLIENT_ORDER_ID"
    INVALID_LIMIT = "INVALID_LIMIT"
    INVALID_INTERVAL = "INVALID_INTERVAL"
    INVALID_TIME = "INVALID_TIME"
    INVALID_REQUEST = "INVALID_REQUEST"
    INVALID_RECV_WINDOW = "INVALID_RECV_WINDOW"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    NOT_FOUND = "NOT_FOUND"
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    CONFLICT = "CONFLICT"
    RATE_LIMITED = "RATE_LIMITED"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    ENGINE_TIMEOUT = "ENGINE_TIMEOUT"

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS.get(self, 400)


_HTTP_STATUS = {
    ErrorCode.ORDER_NOT_FOUND: 404,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.CONFLICT: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
    ErrorCode.ENGINE_TIMEOUT: 504,
}


class ExchangeError(Exception):
    """Root of every exception this project raises on purpose."""


class ConfigError(ExchangeError):
    """Settings or the market configuration are invalid."""


class RequestError(ExchangeError):
    """An edge (API, WebSocket) refused a request; rendered as the contract's error shape."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return self.code.http_status


class ServiceUnavailable(ExchangeError):
    """Redis, PostgreSQL or the engine cannot be reached right now."""


class EngineTimeout(ExchangeError):
    """The engine did not reply in time; the command's outcome is unknown."""
