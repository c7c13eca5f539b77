"""Error codes and the exception tree.

Rejections of user input are *values*: an :class:`ErrorCode` travels in replies and becomes the
contract's ``{"error": {"code", "message"}}``. Exceptions are for bugs and infrastructure, under
one root (each defined here unless a module is named)::

    ExchangeError
    ├── ConfigError          settings or markets are invalid
    ├── RequestError         an edge refused input (with its code)
    │   └── RateLimited      a token bucket is empty (Retry-After)   surfaces.failures
    ├── ServiceUnavailable   Redis, PostgreSQL or engine unreachable
    ├── EngineTimeout        no engine reply in time (outcome unknown)
    ├── LogRolledBack        the log ends before the last applied    engine.service
    ├── UnrecoverableLog     the log trimmed past every snapshot     engine.service
    └── MigrationError       migrations on disk and recorded differ  db.migrate

Outside that tree are the errors that only the caller one step up catches: a parser's, which
it turns into an :class:`ErrorCode` (an error reply or frame), an older snapshot or a skipped
entry at once, and the developer tools' own::

    ValueError
    ├── MoneyError           not an exact, well-formed decimal       money
    ├── HmacSignatureError   a native signature or window is bad     surfaces.native.signing
    ├── Ed25519SignatureError  a Backpack signature or key is bad    surfaces.backpack.signing
    ├── WindowRefused        a timestamp outside its window          surfaces.signing_window
    ├── SnapshotError        bytes that are not a readable snapshot  engine.snapshot
    └── BadEntry             an events entry that cannot be written  db.rows
    Exception
    ├── SurfaceRefusal       a code outside ErrorCode, as is         surfaces.failures
    ├── ProtocolError        a native WS request refused             surfaces.native.ws_protocol
    └── Refused              a Backpack WS request refused           surfaces.backpack.ws_connection
    RuntimeError
    └── LocalServerError     a throwaway server did not start        dev.localservers
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
