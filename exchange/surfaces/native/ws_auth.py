"""AUTH frames: who a connection acts as.

``EXCHANGE_AUTH=apikey``: ``{"api_key", "timestamp", "signature"}`` where the signature is the hex
HMAC-SHA256, keyed with the key's secret, of ``timestamp + "AUTH"`` and the timestamp is within
5000 ms of the server's clock. ``EXCHANGE_AUTH=dev``: ``{"user_id"}``. The signature check is
:mod:`exchange.surfaces.native.signing`'s; this module only picks the scheme and looks the key up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from exchange.errors import ErrorCode
from exchange.surfaces.native import signing
from exchange.surfaces.native.ws_protocol import ProtocolError
from exchange.surfaces.signing_window import wall_clock_ms

AUTH_WINDOW_MS = 5000
MAX_USER_ID_CHARS = 64

# api_key → (user_id, secret) | None, e.g. CredentialStore.lookup.
LookupKey = Callable[[str], Awaitable[tuple[str, str] | None]]


class Authenticator:
    def __init__(
        self,
        mode: str,
        lookup: LookupKey | None = None,
        now_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        if mode == "apikey" and lookup is None:
            raise ValueError("apikey mode needs a key lookup")
        self.mode = mode
        self.lookup = lookup
        self.now_ms = now_ms

    async def authenticate(self, params: dict[str, Any], request_id: Any = None) -> str:
        """The user the AUTH params prove.

        Raises:
            ProtocolError(UNAUTHORIZED): missing, malformed, stale or wrong credentials.
        """

        def refuse(message: str) -> ProtocolError:
            return ProtocolError(ErrorCode.UNAUTHORIZED, message, request_id)

        if self.mode == "dev":
            user_id = params.get("user_id")
            if isinstance(user_id, int) and not isinstance(user_id, bool):
                user_id = str(user_id)
            if not isinstance(user_id, str) or not 0 < len(user_id) <= MAX_USER_ID_CHARS:
                raise refuse("AUTH needs params.user_id in dev mode")
            return user_id
        api_key, timestamp, signature = (
            params.get("api_key"),
            params.get("timestamp"),
            params.get("signature"),
        )
        if isinstance(timestamp, int) and not isinstance(timestamp, bool):
            timestamp = str(timestamp)
        if not (isinstance(api_key, str) and isinstance(timestamp, str) and signature):
            raise refuse("AUTH needs params api_key, timestamp and signature")
        try:
            signing.check_timestamp(timestamp, self.now_ms(), AUTH_WINDOW_MS)
        except signing.HmacSignatureError as exc:
            raise refuse(exc.message) from None
        assert self.lookup is not None
        found = await self.lookup(api_key)
        if found is None or not isinstance(signature, str):
            raise refuse("invalid api key or signature")
        user_id, secret = found
        if not signing.verify(secret, signing.auth_payload(timestamp), signature):
            raise refuse("invalid api key or signature")
        return user_id
