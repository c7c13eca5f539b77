"""Users and their API keys, kept in Redis and shared by the API and WebSocket servers.

How secrets are protected: an API secret is never stored. It is derived when needed as
``HMAC-SHA256(server_key, "api-secret" + api_key)`` from ``EXCHANGE_SECRET_KEY``, so a copy of
Redis (or its AOF) reveals key ids and user ids but no secret, and nothing here ever logs one.
The alternative, storing each secret encrypted under the server key, protects the same way but
needs a cipher and a stored ciphertext per key; derivation needs neither. The price: changing
``EXCHANGE_SECRET_KEY`` changes every secret (rotate by issuing new keys). The development
default key (:data:`exchange.settings.DEV_SECRET_KEY`) is public, so the servers refuse it on an
address other machines can reach.

Redis layout (every name under :data:`PREFIX`)::

    {PREFIX}next_user_id         the counter older versions took user ids from; only read now:
                                 ids up to it are never handed out again
    {PREFIX}users                hash user_id → creation time (ms)
    {PREFIX}api_keys             hash api_key → user_id
    {PREFIX}ed25519              hash base64 public key → user_id
    {PREFIX}user_ed25519:{id}    set of a user's ED25519 public keys

New user ids come from the engine (``CreateUser``): it is the one writer and knows every
``user_id`` that has held a balance or an order, so an id it hands out is new in every auth
mode, across restarts (it is in the command log and the snapshots) and however many API
processes ask at once. A Redis counter could do none of that: in dev mode any ``user_id``
names a user the counter never heard of.

Lookups are cached in the process, here and nowhere else (:class:`KnownKeys`): keys are never
revoked by the contract, so a key once seen keeps meaning the same user and the hot path costs
no Redis round trip. A key not found is not cached: it may be registered a moment later.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from exchange.bus import RedisBridge
from exchange.errors import ErrorCode, RequestError, ServiceUnavailable
from exchange.names import CREDENTIALS_PREFIX

PREFIX = CREDENTIALS_PREFIX
NEXT_USER_ID = PREFIX + "next_user_id"
USERS = PREFIX + "users"
API_KEYS = PREFIX + "api_keys"
ED25519_KEYS = PREFIX + "ed25519"
USER_ED25519 = PREFIX + "user_ed25519:{user_id}"

_CACHE_SIZE = 100_000
_ALLOCATION_ATTEMPTS = 100


def derive_secret(server_key: bytes, api_key: str) -> str:
    """The API secret of ``api_key`` under ``server_key`` (64 hex characters)."""
    return hmac.new(server_key, b"api-secret" + api_key.encode(), hashlib.sha256).hexdigest()


def check_ed25519_key(public_key_b64: Any) -> str:
    """Validate a base64 raw 32-byte ED25519 public key; return it canonically encoded.

    Raises:
        RequestError(INVALID_REQUEST): not base64 of exactly 32 bytes.
    """
    if isinstance(public_key_b64, str):
        try:
            raw = base64.b64decode(public_key_b64, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) == 32:
            return base64.b64encode(raw).decode()
    raise RequestError(
        ErrorCode.INVALID_REQUEST, "ed25519_public_key must be base64 of a raw 32-byte key"
    )


class KnownKeys:
    """The process's one cache of keys found, HMAC and ED25519 alike: ``(kind, key) → user_id``.

    Bounded; once full the oldest entry goes first (keys are never revoked, so eviction only
    costs a Redis round trip the next time that key is seen).
    """

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self.size = size
        self._users: OrderedDict[tuple[str, str], str] = OrderedDict()

    def get(self, kind: str, key: str) -> str | None:
        return self._users.get((kind, key))

    def put(self, kind: str, key: str, user_id: str) -> None:
        self._users[(kind, key)] = user_id
        if len(self._users) > self.size:
            self._users.popitem(last=False)

    def __len__(self) -> int:
        return len(self._users)


class CredentialStore:
    """The user and API-key store over a :class:`~exchange.bus.RedisBridge`.

    Raises ServiceUnavailable (from the bridge) when Redis cannot be reached.
    """

    def __init__(self, bridge: RedisBridge, server_key: str | bytes) -> None:
        self._bridge = bridge
        self._client = bridge.client
        self._server_key = server_key.encode() if isinstance(server_key, str) else server_key
        self.known = KnownKeys()

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await self._bridge.call(fn, *args)

    # --- users and HMAC keys ---------------------------------------------------------------

    async def create_user(
        self, allocate: Callable[[int], Awaitable[str]], ed25519_public_key: str | None = None
    ) -> dict[str, str]:
        """A new user with a fresh API key (and the ED25519 key, when given).

        ``allocate(above)`` gets a new id from the engine, above ``above``. Registering it is
        guarded all the same (HSETNX): an id this store already has (one a Redis of an older
        version holds, or after the engine's state was lost) is skipped, never shared.
        """
        public_key = None if ed25519_public_key is None else check_ed25519_key(ed25519_public_key)
        if public_key is not None and await self.user_for_ed25519(public_key) is not None:
            raise RequestError(ErrorCode.CONFLICT, "that ed25519_public_key is already in use")
        api_key = secrets.token_hex(16)
        now_ms = str(int(time.time() * 1000))

        def register(user_id: str) -> bool:
            if not self._client.hsetnx(USERS, user_id, now_ms):
                return False
            with self._client.pipeline(transaction=True) as pipe:
                pipe.hset(API_KEYS, api_key, user_id)
                if public_key is not None:
                    pipe.hset(ED25519_KEYS, public_key, user_id)
                    pipe.sadd(USER_ED25519.format(user_id=user_id), public_key)
                pipe.execute()
            return True

        above = int(await self._run(self._client.get, NEXT_USER_ID) or 0)
        for _ in range(_ALLOCATION_ATTEMPTS):
            user_id = await allocate(above)
            if await self._run(register, user_id):
                break
        else:
            raise ServiceUnavailable(
                f"no free user id after {_ALLOCATION_ATTEMPTS} tries: the engine's state and "
                "the credential store disagree"
            )
        out = {"user_id": user_id, "api_key": api_key, "api_secret": self.secret_for(api_key)}
        if public_key is not None:
            out["ed25519_public_key"] = public_key
        return out

    async def create_api_key(self, user_id: str) -> dict[str, str]:
        """Another API key for an existing user. Raises RequestError(NOT_FOUND)."""
        if not await self.user_exists(user_id):
            raise RequestError(ErrorCode.NOT_FOUND, f"no user {user_id!r}")
        api_key = secrets.token_hex(16)
        await self._run(self._client.hset, API_KEYS, api_key, user_id)
        return {"user_id": user_id, "api_key": api_key, "api_secret": self.secret_for(api_key)}

    def secret_for(self, api_key: str) -> str:
        return derive_secret(self._server_key, api_key)

    async def user_exists(self, user_id: str) -> bool:
        return bool(await self._run(self._client.hexists, USERS, user_id))

    async def lookup(self, api_key: str) -> tuple[str, str] | None:
        """``(user_id, secret)`` of a known API key, else ``None``."""
        user_id = self.known.get("hmac", api_key)
        if user_id is None:
            if not 8 <= len(api_key) <= 128:
                return None
            raw = await self._run(self._client.hget, API_KEYS, api_key)
            if raw is None:
                return None
            user_id = raw.decode()
            self.known.put("hmac", api_key, user_id)
        return user_id, self.secret_for(api_key)

    # --- ED25519 keys ----------------------------------------------------------------------

    async def add_ed25519_key(self, user_id: str, public_key_b64: str) -> str:
        """Attach an ED25519 public key to a user; returns it canonically encoded.

        Raises:
            RequestError: NOT_FOUND for an unknown user, CONFLICT for a key another user has,
                INVALID_REQUEST for a malformed key.
        """
        public_key = check_ed25519_key(public_key_b64)
        if not await self.user_exists(user_id):
            raise RequestError(ErrorCode.NOT_FOUND, f"no user {user_id!r}")

        def write() -> bool:
            if not self._client.hsetnx(ED25519_KEYS, public_key, user_id):
                return self._client.hget(ED25519_KEYS, public_key) == user_id.encode()
            self._client.sadd(USER_ED25519.format(user_id=user_id), public_key)
            return True

        if not await self._run(write):
            raise RequestError(
                ErrorCode.CONFLICT, "that ed25519_public_key belongs to another user"
            )
        return public_key

    async def user_for_ed25519(self, public_key_b64: str) -> str | None:
        """The user of a canonically encoded key, asked of Redis (uncached: for registration)."""
        raw = await self._run(self._client.hget, ED25519_KEYS, public_key_b64)
        return None if raw is None else raw.decode()

    async def ed25519_user(self, public_key_b64: str) -> str | None:
        """The user of an ED25519 key in any base64 spelling, cached; ``None`` when the key is
        unknown or malformed (what a signature check asks)."""
        user_id = self.known.get("ed25519", public_key_b64)
        if user_id is not None:
            return user_id
        try:
            canonical = check_ed25519_key(public_key_b64)
        except RequestError:
            return None
        user_id = await self.user_for_ed25519(canonical)
        if user_id is not None:
            self.known.put("ed25519", public_key_b64, user_id)
        return user_id

    async def ping(self) -> bool:
        return bool(await self._run(self._client.ping))
