"""Admin endpoints (``X-ADMIN-TOKEN``): users, API and ED25519 keys, deposits and withdrawals,
and the audit."""

from __future__ import annotations

import hmac
from typing import Any

from exchange.audit import audit_json
from exchange.errors import ErrorCode, RequestError
from exchange.surfaces.commands import parse_transfer
from exchange.surfaces.http import Req
from exchange.surfaces.params import check_fields, check_params, json_object, user_id_value
from exchange.surfaces.state import Api
from exchange.views import balances_json

_NONE = frozenset()


def check_admin(expected_token: str, given: str | None) -> None:
    """Raises RequestError: 401 when the token is missing, 403 when it is wrong."""
    if not given:
        raise RequestError(ErrorCode.UNAUTHORIZED, "X-ADMIN-TOKEN header is required")
    if not expected_token or not hmac.compare_digest(expected_token.encode(), given.encode()):
        raise RequestError(ErrorCode.FORBIDDEN, "wrong admin token")


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
    if not api.dev_auth and not await api.credentials.user_exists(command.user_id):
        # with API keys, users exist only once created; dev mode makes them on first use
        raise RequestError(ErrorCode.NOT_FOUND, f"no user {command.user_id!r}")
    done = await api.backend.transfer(command)
    # The balances as the contract has them, plus the transfer's id (no asset is named so).
    return {**balances_json(api.config, done.balances), "transfer_id": str(done.transfer_id)}


async def deposit(api: Api, req: Req) -> Any:
    return await _transfer(api, req, withdraw=False)


async def withdraw(api: Api, req: Req) -> Any:
    return await _transfer(api, req, withdraw=True)


async def audit(api: Api, req: Req) -> Any:
    """Per asset, from the engine and from the history's ledger: see :mod:`exchange.audit`."""
    _admin(api, req)
    engine, history = await api.backend.audit(api.settings.audit_wait_s)
    return audit_json(api.config, engine, history)


ROUTES = [
    ("/api/v1/admin/users", "POST", create_user),
    ("/api/v1/admin/keys", "POST", add_key),
    ("/api/v1/admin/deposit", "POST", deposit),
    ("/api/v1/admin/withdraw", "POST", withdraw),
    ("/api/v1/admin/audit", "GET", audit),
]
