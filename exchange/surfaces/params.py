"""Bodies and query parameters read exactly, or refused with the contract's precise code.

Bodies go through :func:`exchange.codec.loads_exact` (fractions become ``Decimal``, never a
binary float). Every function here returns a plain value or raises
:class:`~exchange.errors.RequestError`; nothing does I/O, so a refused request changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from exchange.codec import loads_exact
from exchange.errors import ErrorCode, RequestError
from exchange.markets import Market, MarketConfig

_USER_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

INTERVALS: dict[str, timedelta] = {
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "4h": timedelta(hours=4),
    "1d": timedelta(days=1),
    "1w": timedelta(weeks=1),
}


def fail(code: ErrorCode, message: str) -> RequestError:
    return RequestError(code, message)


# --- bodies ----------------------------------------------------------------------------------


def parse_json(raw: bytes) -> Any:
    """A request body as JSON with exact numbers. Raises RequestError(INVALID_REQUEST)."""
    if not raw.strip():
        raise fail(ErrorCode.INVALID_REQUEST, "a JSON body is required")
    try:
        return loads_exact(raw)
    except (ValueError, RecursionError) as exc:
        # UnicodeDecodeError and JSONDecodeError are ValueErrors; so is an integer too long
        # for Python's digit limit.
        raise fail(ErrorCode.INVALID_REQUEST, f"malformed JSON: {exc}") from None


def json_object(raw: bytes) -> dict[str, Any]:
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise fail(ErrorCode.INVALID_REQUEST, "the body must be a JSON object")
    return data


def check_fields(data: Mapping[str, Any], allowed: frozenset[str], where: str = "body") -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise fail(ErrorCode.INVALID_REQUEST, f"unknown field {unknown[0]!r} in the {where}")


def market_name(data: Mapping[str, Any], *, required: bool = True) -> str | None:
    """The ``market`` (or its synonym ``symbol``) of a body or query; not yet checked."""
    market, symbol = data.get("market"), data.get("symbol")
    if market is not None and symbol is not None and market != symbol:
        raise fail(ErrorCode.INVALID_REQUEST, "market and symbol name different markets")
    name = market if market is not None else symbol
    if name is None:
        if required:
            raise fail(ErrorCode.INVALID_MARKET, "market (or symbol) is required")
        return None
    if not isinstance(name, str):
        raise fail(ErrorCode.INVALID_MARKET, "market must be a string like 'TATA_INR'")
    return name


def market_of(
    config: MarketConfig, data: Mapping[str, Any], *, required: bool = True
) -> Market | None:
    """The configured market a body or query names. Raises RequestError(INVALID_MARKET)."""
    name = market_name(data, required=required)
    if name is None:
        return None
    market = config.markets.get(name)
    if market is None:
        raise fail(ErrorCode.INVALID_MARKET, f"unknown market {name!r}")
    return market


def user_id_value(value: Any) -> str:
    """A dev-mode ``user_id`` (string, or a JSON integer) → its canonical string."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if not isinstance(value, str) or not _USER_ID.fullmatch(value):
        raise fail(
            ErrorCode.INVALID_REQUEST,
            "user_id must be 1 to 64 letters, digits or '_.:-'",
        )
    return value


def check_params(params: Mapping[str, str], allowed: frozenset[str]) -> None:
    check_fields(params, allowed, where="query string")


# --- history parameters ------------------------------------------------------------------------


def interval_param(params: Mapping[str, str]) -> str:
    interval = params.get("interval")
    if interval not in INTERVALS:
        raise fail(ErrorCode.INVALID_INTERVAL, f"interval must be one of {', '.join(INTERVALS)}")
    return interval


def time_param(params: Mapping[str, str], name: str) -> datetime | None:
    """ISO-8601 (``2024-01-01T00:00:00Z``) or epoch seconds → an aware UTC datetime."""
    raw = params.get(name)
    if raw is None:
        return None
    try:
        if raw.isascii() and raw.isdigit() and len(raw) <= 11:
            return datetime.fromtimestamp(int(raw), UTC)
        if not raw[:4].isdigit() or "T" not in raw and len(raw) != 10:
            raise ValueError(raw)
        moment = datetime.fromisoformat(raw)
    except (ValueError, OverflowError, OSError):
        raise fail(
            ErrorCode.INVALID_TIME,
            f"{name} must be ISO-8601 (2024-01-01T00:00:00Z) or epoch seconds",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
