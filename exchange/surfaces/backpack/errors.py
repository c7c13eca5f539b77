"""Backpack's error words: its codes for the native ones, in ``{"code", "message"}``.

Refusals of a signature are worded by :mod:`.signing` already (``INVALID_SIGNATURE`` has no
native code) and reach the ladder as :class:`~exchange.surfaces.failures.SurfaceRefusal`.
"""

from __future__ import annotations

import logging

from exchange.errors import ErrorCode
from exchange.surfaces.failures import ErrorShape

# native code → (Backpack code, HTTP status). ccxt maps Backpack's codes to its exceptions:
# INSUFFICIENT_FUNDS → InsufficientFunds, INVALID_ORDER/INVALID_PRICE → InvalidOrder,
# INVALID_MARKET → BadSymbol, UNAUTHORIZED/INVALID_SIGNATURE → AuthenticationError,
# TOO_MANY_REQUESTS → RateLimitExceeded, RESOURCE_NOT_FOUND → ExchangeNotAvailable (ccxt maps
# no Backpack code to OrderNotFound), TIMEOUT → RequestTimeout, TRADING_PAUSED →
# ExchangeNotAvailable.
ERROR_CODES: dict[ErrorCode, tuple[str, int]] = {
    ErrorCode.INSUFFICIENT_FUNDS: ("INSUFFICIENT_FUNDS", 400),
    ErrorCode.INVALID_MARKET: ("INVALID_MARKET", 400),
    ErrorCode.INVALID_PRICE: ("INVALID_PRICE", 400),
    ErrorCode.INVALID_QUANTITY: ("INVALID_QUANTITY", 400),
    ErrorCode.INVALID_ASSET: ("INVALID_ASSET", 400),
    ErrorCode.INVALID_ORDER: ("INVALID_ORDER", 400),
    ErrorCode.INVALID_SIDE: ("INVALID_ORDER", 400),
    ErrorCode.INVALID_TYPE: ("INVALID_ORDER", 400),
    ErrorCode.INVALID_TIME_IN_FORCE: ("INVALID_ORDER", 400),
    ErrorCode.INVALID_CLIENT_ORDER_ID: ("INVALID_ORDER", 400),
    ErrorCode.ORDER_NOT_FOUND: ("RESOURCE_NOT_FOUND", 404),
    ErrorCode.NOT_FOUND: ("RESOURCE_NOT_FOUND", 404),
    ErrorCode.UNAUTHORIZED: ("UNAUTHORIZED", 401),
    ErrorCode.FORBIDDEN: ("FORBIDDEN", 403),
    ErrorCode.RATE_LIMITED: ("TOO_MANY_REQUESTS", 429),
    ErrorCode.SERVICE_UNAVAILABLE: ("TRADING_PAUSED", 503),
    ErrorCode.ENGINE_TIMEOUT: ("TIMEOUT", 504),
}
CLIENT_ERROR = ("INVALID_CLIENT_REQUEST", 400)


def error_code(code: ErrorCode) -> tuple[str, int]:
    """A native error code → Backpack's code and HTTP status."""
    return ERROR_CODES.get(code, CLIENT_ERROR)


def error_json(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


BACKPACK_ERRORS = ErrorShape(
    code_of=error_code,
    body=error_json,
    timeout_message="the engine did not answer in time; the outcome is unknown",
    internal_code="SERVER_ERROR",
    log=logging.getLogger("exchange.backpack"),
)
