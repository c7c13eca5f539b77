"""How much one request may ask for: page sizes and the batch size, the same on every surface.

Backpack's endpoints take the native maxima: its klines and its unlimited depth answer a full
page (:attr:`PageLimit.maximum`), and its other pages default as the native ones do.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from exchange.errors import ErrorCode, RequestError

MAX_BATCH_ORDERS = 50


@attrs.frozen
class PageLimit:
    """A ``limit`` parameter's default and maximum."""

    default: int
    maximum: int

    def of(self, params: Mapping[str, str]) -> int:
        """The ``limit`` of a query. Raises RequestError(INVALID_LIMIT)."""
        return limit_param(params, default=self.default, maximum=self.maximum)


DEPTH = PageLimit(100, 5000)
TRADES = PageLimit(100, 1000)
KLINES = PageLimit(500, 1000)
HISTORY = PageLimit(100, 1000)  # a user's orders and fills


def limit_param(params: Mapping[str, str], *, default: int, maximum: int) -> int:
    raw = params.get("limit")
    if raw is None:
        return default
    if not (isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 9):
        raise RequestError(ErrorCode.INVALID_LIMIT, f"limit must be an integer from 1 to {maximum}")
    limit = int(raw)
    if not 1 <= limit <= maximum:
        raise RequestError(ErrorCode.INVALID_LIMIT, f"limit must be an integer from 1 to {maximum}")
    return limit
