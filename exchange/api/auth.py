"""Who is calling: API-key signatures, dev-mode user ids and the admin token.

The HMAC arithmetic lives in :mod:`exchange.signing` (pure); this module adds the store lookup
and the contract's status codes. ``EXCHANGE_AUTH=dev`` trusts a ``user_id`` in the request and
exists only for local use (``Settings.check_listen`` refuses it on a non-loopback address).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from exchange import signing
from exchange.api.parsing import user_id_value
from exchange.credentials import CredentialStore
from exchange.errors import ConfigError, ErrorCode, RequestError


@attrs.frozen
class Caller:
    """An authenticated caller; ``rate_key`` names its rate-limit bucket."""

    user_id: str
    rate_key: str


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


def unauthorized(message: str) -> RequestError:
    return RequestError(ErrorCode.UNAUTHORIZED, message)


def dev_caller(user_id: Any) -> Caller:
    """The caller a dev-mode request names. Raises RequestError(UNAUTHORIZED / INVALID_REQUEST)."""
    if user_id is None:
        raise unauthorized("user_id is required (EXCHANGE_AUTH=dev)")
    user_id = user_id_value(user_id)
    return Caller(user_id, f"user:{user_id}")


class Authenticator:
    """Turns a request's headers (or its ``user_id`` in dev mode) into a :class:`Caller`."""

    def __init__(
        self,
        mode: str,
        credentials: CredentialStore | None,
        *,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        if mode not in ("apikey", "dev"):
            raise ConfigError(f"unknown auth mode {mode!r}")
        self.mode = mode
        self.credentials = credentials
        self.clock_ms = clock_ms

    @property
    def dev(self) -> bool:
        return self.mode == "dev"

    async def signed_caller(
        self, headers: Mapping[str, str], method: str, target: str, body: bytes
    ) -> Caller:
        """Check ``X-API-KEY``/``X-TIMESTAMP``/``X-SIGNATURE`` (and ``X-RECV-WINDOW``).

        Raises:
            RequestError: INVALID_RECV_WINDOW (400) or UNAUTHORIZED (401).
        """
        api_key = headers.get("x-api-key")
        if not api_key:
            raise unauthorized("X-API-KEY, X-TIMESTAMP and X-SIGNATURE headers are required")
        assert self.credentials is not None
        try:
            window = signing.parse_recv_window(headers.get("x-recv-window"))
        except signing.SignatureError as exc:
            raise RequestError(ErrorCode.INVALID_RECV_WINDOW, exc.message) from None
        timestamp = headers.get("x-timestamp")
        try:
            signing.check_timestamp(timestamp, self.clock_ms(), window)
        except signing.SignatureError as exc:
            raise unauthorized(exc.message) from None
        found = await self.credentials.lookup(api_key)
        if found is None:
            raise unauthorized("unknown API key")
        user_id, secret = found
        assert timestamp is not None
        message = signing.payload(timestamp, method, target, body)
        if not signing.verify(secret, message, headers.get("x-signature")):
            raise unauthorized("signature does not match")
        return Caller(user_id, f"key:{api_key}")


def check_admin(expected_token: str, given: str | None) -> None:
    """Raises RequestError: 401 when the token is missing, 403 when it is wrong."""
    if not given:
        raise RequestError(ErrorCode.UNAUTHORIZED, "X-ADMIN-TOKEN header is required")
    if not expected_token or not hmac.compare_digest(expected_token.encode(), given.encode()):
        raise RequestError(ErrorCode.FORBIDDEN, "wrong admin token")
