"""Admin endpoints (``X-ADMIN-TOKEN``): users, API and ED25519 keys, deposits and withdrawals."""

from __future__ import annotations

from typing import Any

from exchange.api.auth import check_admin
from exchange.api.common import Api, Req
from exchange.api.parsing import (
    check_fields,
    check_params,
    json_object,
    parse_transfer,
    user_id_value,
)
from exchange.errors import ErrorCode, RequestError
from exchange.views import balances_json

_NONE = frozenset()


def _admin(api: Api, req: Req) -> None:
    check_admin(api.settings.admin_token, req.headers.get("x-admin-token"))
    check_params(req.params, _NONE)


async def create_user(api: Api, req: Req) -> Any:
    """``{}`` or ``{"ed25519_public_key"}`` → ``{"user_id", "api_key", "api_secret"[, key]}``."""
    _admin(api, req)
    data = json_object(req.body) if req.body.strip() else {}
    check_fields(data, frozenset({"ed25519_public_key"}))
    return await api.credentials.create_user(
        api.backend.new_user_id, data.get("ed25519_public_key")
    )


async def add_key(api: Api, req: Req) -> Any:
    """``{"user_id", "ed25519_public_key"}`` → the same, the key attached to the user."""
    _admin(api, req)
    data = json_object(req.body)
    check_fields(data, frozenset({"user_id", "ed25519_public_key"}))
    if "user_id" not in data or "ed25519_public_key" not in data:
        raise RequestError(ErrorCode.INVALID_REQUEST, "user_id and ed25519_public_key are required")
    user_id = user_id_value(data["user_id"])
    key = await api.credentials.add_ed25519_key(user_id, data["ed25519_public_key"])
    return {"user_id": user_id, "ed25519_public_key": key}


async def _transfer(api: Api, req: Req, *, withdraw: bool) -> Any:
    _admin(api, req)
    command = parse_transfer(api.config, json_object(req.body), withdraw=withdraw)
    if not api.auth.dev and not await api.credentials.user_exists(command.user_id):
        # with API keys, users exist only once created; dev mode makes them on first use
        raise RequestError(ErrorCode.NOT_FOUND, f"no user {command.user_id!r}")
    return balances_json(api.config, await api.backend.transfer(command))


async def deposit(api: Api, req: Req) -> Any:
    return await _transfer(api, req, withdraw=False)


async def withdraw(api: Api, req: Req) -> Any:
    return await _transfer(api, req, withdraw=True)


ROUTES = [
    ("/api/v1/admin/users", "POST", create_user),
    ("/api/v1/admin/keys", "POST", add_key),
    ("/api/v1/admin/deposit", "POST", deposit),
    ("/api/v1/admin/withdraw", "POST", withdraw),
]
