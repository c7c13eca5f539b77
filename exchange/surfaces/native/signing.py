"""HMAC-SHA256 request signing, as the contract defines it (pure: no I/O, no clock).

A private request carries ``X-API-KEY``, ``X-TIMESTAMP`` (ms) and ``X-SIGNATURE``: the lowercase
hex HMAC-SHA256, keyed with the key's secret, of ``timestamp + METHOD + target + body``, where
``target`` is the path and query string exactly as sent and ``body`` the raw request body. The
server refuses a timestamp further than the receive window from its own clock, so a captured
request cannot be replayed later, and the body is signed, so it cannot be replayed with another.

The caller passes the server's clock reading in; this module never reads one. The window rule
is :mod:`exchange.surfaces.signing_window`'s, shared with Backpack's scheme. The WebSocket AUTH
frame signs ``timestamp + "AUTH"`` with the same key (:func:`auth_payload`).
"""

from __future__ import annotations

import hashlib
import hmac

from exchange.surfaces.signing_window import TimestampWindow, WindowRefused

WINDOW = TimestampWindow(
    timestamp_header="X-TIMESTAMP",
    window_header="X-RECV-WINDOW",
    stale_message="timestamp is outside the receive window",
)


class HmacSignatureError(ValueError):
    """An HMAC signature, timestamp or receive window is malformed, wrong or stale.

    ``field`` names what was wrong (``"recv_window"`` is a client error of its own: 400).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def payload(timestamp: str, method: str, target: str, body: bytes) -> bytes:
    """The bytes that are signed: ``timestamp + METHOD + target + body``."""
    return f"{timestamp}{method.upper()}{target}".encode() + body


def auth_payload(timestamp: str) -> bytes:
    """What a WebSocket AUTH frame signs."""
    return f"{timestamp}AUTH".encode()


def sign(secret: str, message: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of ``message`` keyed with ``secret``."""
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_request(secret: str, timestamp: str, method: str, target: str, body: bytes = b"") -> str:
    return sign(secret, payload(timestamp, method, target, body))


def parse_recv_window(raw: str | None) -> int:
    """``X-RECV-WINDOW`` → ms (default 5000). Raises HmacSignatureError("recv_window", ...)."""
    try:
        return WINDOW.window_ms(raw)
    except WindowRefused as exc:
        raise HmacSignatureError("recv_window", exc.message) from None


def check_timestamp(raw: str | None, now_ms: int, recv_window_ms: int) -> int:
    """The request's timestamp, if it is an integer within the window of ``now_ms``.

    Raises:
        HmacSignatureError: ``field="timestamp"`` when missing, malformed or stale.
    """
    try:
        return WINDOW.check(raw, now_ms, recv_window_ms)
    except WindowRefused as exc:
        raise HmacSignatureError("timestamp", exc.message) from None


def verify(secret: str, message: bytes, signature: str | None) -> bool:
    """Constant-time check of a hex signature (case-insensitive)."""
    if not signature or len(signature) != 64:
        return False
    return hmac.compare_digest(sign(secret, message), signature.lower())


def verify_request(
    secret: str,
    *,
    timestamp: str | None,
    signature: str | None,
    method: str,
    target: str,
    body: bytes,
    now_ms: int,
    recv_window: str | None = None,
) -> None:
    """Check one signed request completely.

    Raises:
        HmacSignatureError: ``field`` is ``"recv_window"`` (→ 400), ``"timestamp"`` or
            ``"signature"`` (→ 401).
    """
    window = parse_recv_window(recv_window)
    check_timestamp(timestamp, now_ms, window)
    assert timestamp is not None
    if not verify(secret, payload(timestamp, method, target, body), signature):
        raise HmacSignatureError("signature", "signature does not match")
