"""The native surface's error words: the contract's codes as they are, in
``{"error": {"code", "message"}}`` (``CONTRACT.md``)."""

from __future__ import annotations

import logging
from typing import Any

from exchange.errors import ErrorCode
from exchange.surfaces.failures import ErrorShape


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": str(code), "message": message}}


def _code_of(code: ErrorCode) -> tuple[str, int]:
    return str(code), code.http_status


NATIVE_ERRORS = ErrorShape(
    code_of=_code_of,
    body=error_body,
    timeout_message=(
        "the engine did not answer in time; the outcome is unknown "
        "(look the order up by client_order_id)"
    ),
    internal_code="INTERNAL_ERROR",
    log=logging.getLogger("exchange.api"),
)
