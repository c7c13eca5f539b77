"""Who calls the native surface: an HMAC-signed API key, or a dev-mode ``user_id``.

The HMAC arithmetic lives in :mod:`.signing` (pure); this module adds the credential store's
lookup, the signing clock and the contract's status codes. ``EXCHANGE_AUTH=dev`` trusts a
``user_id`` in the request and exists only for local use (``Settings.check_listen`` refuses it
on a non-loopback address).
"""

from __future__ import annotations

from typing import Any

import attrs

from exchange.errors import ErrorCode, RequestError
from exchange.surfaces.http import Req
from exchange.surfaces.native import signing
from exchange.surfaces.params import user_id_value
from exchange.surfaces.state import Api


@attrs.frozen
class Caller:
    """An authenticated caller; ``rate_key`` names its rate-limit bucket."""

    user_id: str
    rate_key: str


def unauthorized(message: str) -> RequestError:
    return RequestError(ErrorCode.UNAUTHORIZED, message)


def dev_caller(user_id: Any) -> Caller:
    """The caller a dev-mode request names. Raises RequestError(UNAUTHORIZED / INVALID_REQUEST)."""
    if user_id is None:
        raise unauthorized("user_id is required (EXCHANGE_AUTH=dev)")
    user_id = user_id_value(user_id)
    return Caller(user_id, f"user:{user_id}")


async def caller(api: Api, req: Req, dev_user_id: Any = None) -> Caller:
    """Authenticate a private request and charge its rate-limit bucket one token.

    In dev mode the caller is ``dev_user_id`` (else the query's ``user_id``).
    """
    if api.dev_auth:
        found = dev_caller(req.params.get("user_id") if dev_user_id is None else dev_user_id)
    else:
        found = await signed_caller(api, req)
    api.charge(api.private_limiter, found.rate_key)
    return found


async def signed_caller(api: Api, req: Req) -> Caller:
    """Check ``X-API-KEY``/``X-TIMESTAMP``/``X-SIGNATURE`` (and ``X-RECV-WINDOW``).

    Raises:
        RequestError: INVALID_RECV_WINDOW (400) or UNAUTHORIZED (401).
    """
    headers = req.headers
    api_key = headers.get("x-api-key")
    if not api_key:
        raise unauthorized("X-API-KEY, X-TIMESTAMP and X-SIGNATURE headers are required")
    try:
        window = signing.parse_recv_window(headers.get("x-recv-window"))
    except signing.HmacSignatureError as exc:
        raise RequestError(ErrorCode.INVALID_RECV_WINDOW, exc.message) from None
    timestamp = headers.get("x-timestamp")
    try:
        signing.check_timestamp(timestamp, api.clock_ms(), window)
    except signing.HmacSignatureError as exc:
        raise unauthorized(exc.message) from None
    found = await api.credentials.lookup(api_key)
    if found is None:
        raise unauthorized("unknown API key")
    user_id, secret = found
    assert timestamp is not None
    message = signing.payload(timestamp, req.method, req.target, req.body)
    if not signing.verify(secret, message, headers.get("x-signature")):
        raise unauthorized("signature does not match")
    return Caller(user_id, f"key:{api_key}")
