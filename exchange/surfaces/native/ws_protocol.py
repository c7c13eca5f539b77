"""The native WebSocket protocol: client requests in, acknowledgements and errors out (pure).

A client sends ``{"method": "SUBSCRIBE" | "UNSUBSCRIBE" | "AUTH", "params": ..., "id": ...}``;
the server answers ``{"id": id, "result": null}`` or ``{"id": id, "error": {"code",
"message"}}``. Streams are named ``depth@M``, ``trade@M``, ``ticker@M``, ``kline_I@M`` and the
private ``orders`` and ``balances``. Nothing here does I/O, so every rule is tested directly.
"""

from __future__ import annotations

from typing import Any

import attrs
import orjson

from exchange.errors import ErrorCode
from exchange.markets import MarketConfig
from exchange.marketstats import INTERVALS_MS
from exchange.surfaces.native.ws_trading import METHODS as TRADING_METHODS

STREAM_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "AUTH")
METHODS = STREAM_METHODS + tuple(TRADING_METHODS)
PRIVATE_STREAMS = ("orders", "balances")
MARKET_KINDS = ("depth", "trade", "ticker")
MAX_FRAME_BYTES = 64 * 1024
MAX_STREAMS_PER_REQUEST = 100


class ProtocolError(Exception):
    """A request the server refuses; answered with an error frame (the connection stays)."""

    def __init__(self, code: ErrorCode, message: str, request_id: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


@attrs.frozen
class Stream:
    """A parsed stream name. ``market`` is None for private streams."""

    name: str
    kind: str  # depth | trade | ticker | kline | orders | balances
    market: str | None = None
    interval: str | None = None

    @property
    def private(self) -> bool:
        return self.market is None


@attrs.frozen
class Request:
    method: str
    params: Any
    id: Any


def parse_request(raw: str | bytes) -> Request:
    """Read one client frame.

    Raises:
        ProtocolError(INVALID_REQUEST): not a JSON object with a known method and a valid id.
    """
    if len(raw) > MAX_FRAME_BYTES:
        raise ProtocolError(ErrorCode.INVALID_REQUEST, "frame too large")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ProtocolError(ErrorCode.INVALID_REQUEST, "frame is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.INVALID_REQUEST, "frame must be a JSON object")
    request_id = data.get("id")
    if request_id is not None and (
        isinstance(request_id, bool) or not isinstance(request_id, int | str)
    ):
        raise ProtocolError(ErrorCode.INVALID_REQUEST, "id must be an integer or a string")
    method = data.get("method")
    if method not in METHODS:
        raise ProtocolError(
            ErrorCode.INVALID_REQUEST, f"method must be one of {', '.join(METHODS)}", request_id
        )
    params = data.get("params")
    if method == "AUTH" or method in TRADING_METHODS:
        if not isinstance(params, dict):
            raise ProtocolError(
                ErrorCode.INVALID_REQUEST, f"{method} params must be an object", request_id
            )
    elif (
        not isinstance(params, list)
        or not params
        or len(params) > MAX_STREAMS_PER_REQUEST
        or not all(isinstance(p, str) for p in params)
    ):
        raise ProtocolError(
            ErrorCode.INVALID_REQUEST,
            f"params must be a list of 1 to {MAX_STREAMS_PER_REQUEST} stream names",
            request_id,
        )
    return Request(method, params, request_id)


def parse_stream(name: str, config: MarketConfig, request_id: Any = None) -> Stream:
    """``"kline_1m@TATA_INR"`` → Stream.

    Raises:
        ProtocolError: INVALID_REQUEST for an unknown stream or interval, INVALID_MARKET for an
            unknown market.
    """
    if name in PRIVATE_STREAMS:
        return Stream(name, name)
    kind, at, market = name.partition("@")
    interval = None
    if kind.startswith("kline_"):
        kind, interval = "kline", kind.removeprefix("kline_")
        if interval not in INTERVALS_MS:
            raise ProtocolError(
                ErrorCode.INVALID_REQUEST,
                f"unknown kline interval in {name!r} (one of {' '.join(INTERVALS_MS)})",
                request_id,
            )
    elif kind not in MARKET_KINDS or not at:
        raise ProtocolError(ErrorCode.INVALID_REQUEST, f"unknown stream {name!r}", request_id)
    if market not in config.markets:
        raise ProtocolError(ErrorCode.INVALID_MARKET, f"unknown market {market!r}", request_id)
    return Stream(name, kind, market, interval)


def result_frame(request_id: Any) -> bytes:
    return orjson.dumps({"id": request_id, "result": None})


def error_frame(request_id: Any, code: str, message: str) -> bytes:
    return orjson.dumps({"id": request_id, "error": {"code": code, "message": message}})


def stream_frame(stream: str, data: dict[str, Any]) -> bytes:
    """A server push: ``{"stream": ..., "data": ...}`` as JSON bytes."""
    return orjson.dumps({"stream": stream, "data": data})
