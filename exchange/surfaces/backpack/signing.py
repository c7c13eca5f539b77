"""Backpack's ED25519 request signing (pure: no I/O, no clock; the window rule is
:mod:`exchange.surfaces.signing_window`'s).

A signed request carries ``X-API-Key`` (base64 of the raw 32-byte public key), ``X-Signature``
(base64 of the 64-byte signature), ``X-Timestamp`` (ms) and ``X-Window`` (ms, default 5000).
What is signed::

    instruction=<name>&<params sorted by key, k=v joined by &>&timestamp=<ms>&window=<ms>

with the params taken from the query string (GET) or the JSON body (otherwise), booleans written
``true``/``false``. A batch (a JSON list) repeats ``instruction=<name>&<order>&`` per item before
``timestamp``. ccxt percent-encodes the values (``urllib.parse.quote``); Backpack's own clients
write them raw; both texts are accepted, since both are signed by the key's holder and carry the
same timestamp (accepting two spellings of one request opens no replay).

The instruction names are those of ccxt's ``options['instructions']`` for Backpack.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from exchange.surfaces.signing_window import TimestampWindow, WindowRefused

WINDOW = TimestampWindow(
    timestamp_header="X-Timestamp",
    window_header="X-Window",
    stale_message="the request has expired (timestamp outside window)",
    blank_window_is_default=True,
)

# (path under /backpack, method) → instruction
INSTRUCTIONS: dict[tuple[str, str], str] = {
    ("/api/v1/capital", "GET"): "balanceQuery",
    ("/api/v1/order", "GET"): "orderQuery",
    ("/api/v1/order", "POST"): "orderExecute",
    ("/api/v1/order", "DELETE"): "orderCancel",
    ("/api/v1/orders", "GET"): "orderQueryAll",
    ("/api/v1/orders", "POST"): "orderExecute",
    ("/api/v1/orders", "DELETE"): "orderCancelAll",
    ("/wapi/v1/history/orders", "GET"): "orderHistoryQueryAll",
    ("/wapi/v1/history/fills", "GET"): "fillHistoryQueryAll",
}
SUBSCRIBE_INSTRUCTION = "subscribe"


class Ed25519SignatureError(ValueError):
    """An ED25519 signature, key, timestamp or window is malformed, wrong or stale.

    ``code`` is the Backpack error code to answer with (``UNAUTHORIZED`` or
    ``INVALID_SIGNATURE``).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def _params_texts(params: Mapping[str, Any]) -> tuple[str, str]:
    """``(encoded, raw)`` spellings of the sorted ``k=v&...`` of one params object."""
    items = [(key, _text(params[key])) for key in sorted(params)]
    encoded = urlencode(items, quote_via=quote)
    raw = "&".join(f"{key}={value}" for key, value in items)
    return encoded, raw


def signing_texts(instruction: str, params: Any, timestamp: str, window: str) -> list[bytes]:
    """The texts a request may have signed: ccxt's (encoded) and the raw one (same when no
    value needs escaping). ``params`` is a mapping, or a list of mappings for a batch."""
    tail = f"timestamp={timestamp}&window={window}"
    if isinstance(params, list):
        encoded_parts, raw_parts = [], []
        for item in params:
            encoded, raw = _params_texts(item if isinstance(item, Mapping) else {})
            encoded_parts.append(f"instruction={instruction}&{encoded}&")
            raw_parts.append(f"instruction={instruction}&{raw}&")
        texts = ["".join(encoded_parts) + tail, "".join(raw_parts) + tail]
    else:
        encoded, raw = _params_texts(params or {})
        head = f"instruction={instruction}&"
        texts = [
            head + (encoded + "&" if encoded else "") + tail,
            head + (raw + "&" if raw else "") + tail,
        ]
    unique = dict.fromkeys(texts)  # keep order, drop the duplicate
    return [text.encode() for text in unique]


def parse_window(raw: str | None) -> int:
    """``X-Window`` → ms. Raises Ed25519SignatureError(INVALID_CLIENT_REQUEST)."""
    try:
        return WINDOW.window_ms(raw)
    except WindowRefused as exc:
        raise Ed25519SignatureError("INVALID_CLIENT_REQUEST", exc.message) from None


def check_timestamp(raw: str | None, now_ms: int, window_ms: int) -> int:
    """The request's timestamp if within ``window_ms`` of ``now_ms``. Raises
    Ed25519SignatureError: INVALID_CLIENT_REQUEST when malformed, UNAUTHORIZED when stale."""
    try:
        return WINDOW.check(raw, now_ms, window_ms)
    except WindowRefused as exc:
        code = "UNAUTHORIZED" if exc.kind == "stale" else "INVALID_CLIENT_REQUEST"
        raise Ed25519SignatureError(code, exc.message) from None


def decode_signature(raw: str | None) -> bytes:
    """``X-Signature`` → 64 bytes. Raises Ed25519SignatureError(INVALID_SIGNATURE)."""
    try:
        signature = base64.b64decode(raw or "", validate=True)
    except (binascii.Error, ValueError):
        signature = b""
    if len(signature) != 64:
        raise Ed25519SignatureError("INVALID_SIGNATURE", "X-Signature must be base64 of 64 bytes")
    return signature


def public_key(key_b64: str) -> Ed25519PublicKey:
    """A verifier for a base64 raw public key. Raises Ed25519SignatureError(UNAUTHORIZED)."""
    try:
        raw = base64.b64decode(key_b64, validate=True)
        if len(raw) == 32:
            return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        pass
    raise Ed25519SignatureError("UNAUTHORIZED", "X-API-Key must be base64 of a 32-byte ED25519 key")


def verify_any(key: Ed25519PublicKey, signature: bytes, texts: list[bytes]) -> bool:
    """Whether ``signature`` signs one of ``texts`` under ``key``."""
    for text in texts:
        try:
            key.verify(signature, text)
            return True
        except InvalidSignature:
            continue
    return False
