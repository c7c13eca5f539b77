"""Every error code of the contract, its status and shape, and that a refusal changes nothing."""

from __future__ import annotations

import orjson
import pytest
import redis
import trio

from exchange.api.app import create_app
from exchange.errors import ConfigError
from exchange.names import HEARTBEAT_KEY
from exchange.settings import Settings
from tests.api.conftest import ADMIN_TOKEN, Client

ORDER = {"market": "TATA_INR", "side": "buy", "price": "100", "quantity": "1", "user_id": "1"}
ADMIN = {"X-ADMIN-TOKEN": ADMIN_TOKEN}

CASES = [
    # (method, path, body, headers, status, code)
    ("POST", "/api/v1/order", {**ORDER, "market": "XYZ_INR"}, {}, 400, "INVALID_MARKET"),
    ("GET", "/api/v1/depth?symbol=XYZ_INR", None, {}, 400, "INVALID_MARKET"),
    ("GET", "/api/v1/depth", None, {}, 400, "INVALID_MARKET"),
    ("POST", "/api/v1/order", {**ORDER, "price": "100.001"}, {}, 400, "INVALID_PRICE"),
    ("POST", "/api/v1/order", {**ORDER, "price": "0"}, {}, 400, "INVALID_PRICE"),
    ("POST", "/api/v1/order", {**ORDER, "price": "1" + "0" * 50}, {}, 400, "INVALID_PRICE"),
    ("POST", "/api/v1/order", {**ORDER, "quantity": "0.001"}, {}, 400, "INVALID_QUANTITY"),
    ("POST", "/api/v1/order", {**ORDER, "quantity": "-1"}, {}, 400, "INVALID_QUANTITY"),
    ("POST", "/api/v1/order", {**ORDER, "side": "hold"}, {}, 400, "INVALID_SIDE"),
    ("POST", "/api/v1/order", {**ORDER, "type": "stop"}, {}, 400, "INVALID_TYPE"),
    ("POST", "/api/v1/order", {**ORDER, "time_in_force": "GTX"}, {}, 400, "INVALID_TIME_IN_FORCE"),
    ("POST", "/api/v1/order", {**ORDER, "post_only": 1}, {}, 400, "INVALID_ORDER"),
    (
        "POST",
        "/api/v1/order",
        {**ORDER, "client_order_id": "c" * 37},
        {},
        400,
        "INVALID_CLIENT_ORDER_ID",
    ),
    ("POST", "/api/v1/order", {**ORDER, "quantity": "1000.01"}, {}, 400, "INSUFFICIENT_FUNDS"),
    ("POST", "/api/v1/order", {**ORDER, "extra": 1}, {}, 400, "INVALID_REQUEST"),
    ("POST", "/api/v1/order", b'{"market": "TATA_INR",', {}, 400, "INVALID_REQUEST"),
    ("POST", "/api/v1/order", b"", {}, 400, "INVALID_REQUEST"),
    ("POST", "/api/v1/orders?user_id=1", [ORDER] * 51, {}, 400, "INVALID_REQUEST"),
    ("GET", "/api/v1/depth?symbol=TATA_INR&limit=0", None, {}, 400, "INVALID_LIMIT"),
    ("GET", "/api/v1/depth?symbol=TATA_INR&limit=5001", None, {}, 400, "INVALID_LIMIT"),
    ("GET", "/api/v1/trades?symbol=TATA_INR&limit=1001", None, {}, 400, "INVALID_LIMIT"),
    ("GET", "/api/v1/fills?user_id=1&limit=abc", None, {}, 400, "INVALID_LIMIT"),
    ("GET", "/api/v1/klines?market=TATA_INR&interval=2m", None, {}, 400, "INVALID_INTERVAL"),
    (
        "GET",
        "/api/v1/klines?market=TATA_INR&interval=1m&start_time=soon",
        None,
        {},
        400,
        "INVALID_TIME",
    ),
    ("GET", "/api/v1/depth?symbol=TATA_INR&colour=red", None, {}, 400, "INVALID_REQUEST"),
    ("GET", "/api/v1/order?order_id=999&user_id=1", None, {}, 404, "ORDER_NOT_FOUND"),
    (
        "DELETE",
        "/api/v1/order",
        {"market": "TATA_INR", "order_id": "999", "user_id": "1"},
        {},
        404,
        "ORDER_NOT_FOUND",
    ),
    ("GET", "/api/v1/nothing-here", None, {}, 404, "NOT_FOUND"),
    ("GET", "/api/v1/balances", None, {}, 401, "UNAUTHORIZED"),  # dev mode without user_id
    (
        "POST",
        "/api/v1/admin/deposit",
        {"user_id": "1", "asset": "INR", "amount": "1"},
        {},
        401,
        "UNAUTHORIZED",
    ),
    (
        "POST",
        "/api/v1/admin/deposit",
        {"user_id": "1", "asset": "INR", "amount": "1"},
        {"X-ADMIN-TOKEN": "x"},
        403,
        "FORBIDDEN",
    ),
    (
        "POST",
        "/api/v1/admin/deposit",
        {"user_id": "1", "asset": "XYZ", "amount": "1"},
        ADMIN,
        400,
        "INVALID_ASSET",
    ),
    (
        "POST",
        "/api/v1/admin/deposit",
        {"user_id": "1", "asset": "INR", "amount": "0.00001"},
        ADMIN,
        400,
        "INVALID_AMOUNT",
    ),
    (
        "POST",
        "/api/v1/admin/withdraw",
        {"user_id": "1", "asset": "INR", "amount": "1000000"},
        ADMIN,
        400,
        "INSUFFICIENT_FUNDS",
    ),
    (
        "POST",
        "/api/v1/admin/keys",
        {"user_id": "1", "ed25519_public_key": "short"},
        ADMIN,
        400,
        "INVALID_REQUEST",
    ),
]


async def test_every_refusal_has_its_code_and_changes_nothing(client: Client):
    before = [await client.ok("GET", f"/api/v1/balances?user_id={u}") for u in ("1", "2")]
    depth_before = await client.ok("GET", "/api/v1/depth?symbol=TATA_INR")
    for method, path, body, headers, status, code in CASES:
        data = body if isinstance(body, bytes) else None
        got_status, got, _ = await client.call(
            method, path, None if data is not None else body, data=data, headers=headers
        )
        assert isinstance(got, dict) and "error" in got, (method, path, body, got_status)
        assert (got_status, got["error"]["code"]) == (status, code), (method, path, body, got)
        assert isinstance(got["error"]["message"], str) and got["error"]["message"]
    after = [await client.ok("GET", f"/api/v1/balances?user_id={u}") for u in ("1", "2")]
    assert after == before
    depth_after = await client.ok("GET", "/api/v1/depth?symbol=TATA_INR")
    assert depth_after["last_update_id"] == depth_before["last_update_id"]


async def test_conflict_for_an_ed25519_key_in_use(client: Client):
    key = "A" * 43 + "="  # base64 of 32 zero-ish bytes
    status, first = await client.admin("/api/v1/admin/users", {"ed25519_public_key": key})
    assert status == 200 and first["ed25519_public_key"] == key
    status, second = await client.admin("/api/v1/admin/users", {"ed25519_public_key": key})
    assert (status, second["error"]["code"]) == (409, "CONFLICT")
    status, added = await client.admin(
        "/api/v1/admin/keys", {"user_id": first["user_id"], "ed25519_public_key": key}
    )
    assert (status, added) == (200, {"user_id": first["user_id"], "ed25519_public_key": key})
    status, missing = await client.admin(
        "/api/v1/admin/keys", {"user_id": "nobody", "ed25519_public_key": "B" * 43 + "="}
    )
    assert (status, missing["error"]["code"]) == (404, "NOT_FOUND")


async def test_service_unavailable_and_engine_timeout(redis_url: str, database_url: str):
    """No engine: 503 at once. A heartbeat but nobody answering: 504 after the timeout."""
    settings = Settings(
        redis_url=redis_url, database_url=database_url, auth_mode="dev", engine_timeout_s=0.3
    )
    app = create_app(settings)
    async with app.test_app() as test_app:
        api = Client(test_app.test_client(), settings)
        with trio.fail_after(2):
            status, body, _ = await api.call("POST", "/api/v1/order", ORDER)
        assert (status, body["error"]["code"]) == (503, "SERVICE_UNAVAILABLE")
        status, body, _ = await api.call("GET", "/readyz")
        assert status == 503 and body["checks"]["engine"] != "ok"

        client = redis.Redis.from_url(redis_url)
        client.set(HEARTBEAT_KEY, orjson.dumps({"seq": 0, "ts": 0}), px=60_000)
        client.close()

        async def engine_seen() -> bool:
            return (await api.call("GET", "/readyz"))[2] is not None and (
                (await api.call("GET", "/readyz"))[1]["checks"]["engine"] == "ok"
            )

        with trio.fail_after(5):
            while not await engine_seen():
                await trio.sleep(0.05)
        with trio.fail_after(3):
            status, body, _ = await api.call("POST", "/api/v1/order", ORDER)
        assert (status, body["error"]["code"]) == (504, "ENGINE_TIMEOUT")
        status, body, _ = await api.call("GET", "/api/v1/depth?symbol=TATA_INR")
        assert (status, body["error"]["code"]) == (504, "ENGINE_TIMEOUT")


def test_dev_mode_refuses_a_public_address():
    with pytest.raises(ConfigError):
        create_app(Settings(auth_mode="dev", api_host="0.0.0.0"))
