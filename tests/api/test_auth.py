"""Signed requests (EXCHANGE_AUTH=apikey), rate limits, and several API instances at once."""

from __future__ import annotations

import time

import orjson

from exchange.surfaces.native.signing import sign_request
from tests.api.conftest import Client


def signed(user: dict, method: str, target: str, body: bytes = b"", *, ts_ms=None, **extra):
    timestamp = str(ts_ms if ts_ms is not None else int(time.time() * 1000))
    headers = {
        "X-API-KEY": user["api_key"],
        "X-TIMESTAMP": timestamp,
        "X-SIGNATURE": sign_request(user["api_secret"], timestamp, method, target, body),
    }
    headers.update(extra)
    return headers


async def test_signed_requests(make_client):
    async with make_client(auth_mode="apikey") as api:
        status, alice = await api.admin("/api/v1/admin/users")
        assert status == 200 and set(alice) == {"user_id", "api_key", "api_secret"}
        status, bob = await api.admin("/api/v1/admin/users", {})
        assert bob["user_id"] != alice["user_id"]
        await api.deposit(alice["user_id"], "INR", "1000")
        status, body = await api.admin(
            "/api/v1/admin/deposit", {"user_id": "nobody", "asset": "INR", "amount": "1"}
        )
        assert (status, body["error"]["code"]) == (404, "NOT_FOUND")

        # good: a user_id in the body is accepted and ignored (the key decides who acts)
        order = {
            "market": "TATA_INR",
            "side": "buy",
            "price": "10",
            "quantity": "1",
            "user_id": bob["user_id"],
        }
        raw = orjson.dumps(order)
        placed = await api.ok(
            "POST", "/api/v1/order", data=raw, headers=signed(alice, "POST", "/api/v1/order", raw)
        )
        assert placed["status"] == "new"
        target = "/api/v1/order/open?market=TATA_INR"
        mine = await api.ok("GET", target, headers=signed(alice, "GET", target))
        assert [o["order_id"] for o in mine] == [placed["order_id"]]
        # bob sees none of alice's orders and cannot cancel them
        assert await api.ok("GET", target, headers=signed(bob, "GET", target)) == []
        cancel = orjson.dumps({"market": "TATA_INR", "order_id": placed["order_id"]})
        status, body, _ = await api.call(
            "DELETE",
            "/api/v1/order",
            data=cancel,
            headers=signed(bob, "DELETE", "/api/v1/order", cancel),
        )
        assert (status, body["error"]["code"]) == (404, "ORDER_NOT_FOUND")
        # a trailing slash is part of the signed target, exactly as sent
        balances = await api.ok(
            "GET", "/api/v1/balances/", headers=signed(alice, "GET", "/api/v1/balances/")
        )
        assert balances["INR"] == {"available": "990", "locked": "10"}

        refusals = [
            ({}, 401),  # no credentials at all
            (signed(alice, "POST", "/api/v1/order", raw) | {"X-SIGNATURE": "ab" * 32}, 401),
            (
                signed(alice, "POST", "/api/v1/order", b'{"other":1}'),
                401,
            ),  # replay with another body
            (
                signed(alice, "POST", "/api/v1/order", raw, ts_ms=int(time.time() * 1000) - 6000),
                401,
            ),
            (signed(alice, "POST", "/api/v1/order", raw) | {"X-API-KEY": "f" * 32}, 401),
            (signed(alice, "POST", "/api/v1/order", raw) | {"X-RECV-WINDOW": "0"}, 400),
            (signed(alice, "POST", "/api/v1/order", raw) | {"X-RECV-WINDOW": "60001"}, 400),
        ]
        for headers, expected in refusals:
            status, body, _ = await api.call("POST", "/api/v1/order", data=raw, headers=headers)
            code = "INVALID_RECV_WINDOW" if expected == 400 else "UNAUTHORIZED"
            assert (status, body["error"]["code"]) == (expected, code), headers
        # a wider receive window admits an older timestamp
        old = signed(
            alice,
            "POST",
            "/api/v1/order",
            raw,
            ts_ms=int(time.time() * 1000) - 6000,
            **{"X-RECV-WINDOW": "20000"},
        )
        assert (await api.call("POST", "/api/v1/order", data=raw, headers=old))[0] == 200


async def test_rate_limits_answer_429_with_retry_after(make_client):
    async with make_client(
        rate_limit_private_per_s=0.5,
        rate_limit_private_burst=3,
        rate_limit_public_per_s=0.5,
        rate_limit_public_burst=2,
    ) as api:
        statuses = [(await api.call("GET", "/api/v1/balances?user_id=7"))[0] for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        status, body, headers = await api.call("GET", "/api/v1/balances?user_id=7")
        assert (status, body["error"]["code"]) == (429, "RATE_LIMITED")
        assert int(headers["Retry-After"]) >= 1
        assert (await api.call("GET", "/api/v1/balances?user_id=8"))[0] == 200  # per user
        public = [(await api.call("GET", "/api/v1/markets"))[0] for _ in range(3)]
        assert public == [200, 200, 429]
        # a batch costs one token per order
        batch = [{"market": "TATA_INR", "side": "buy", "price": "1", "quantity": "1"}] * 5
        status, body, _ = await api.call("POST", "/api/v1/orders?user_id=9", batch)
        assert (status, body["error"]["code"]) == (429, "RATE_LIMITED")


async def test_two_api_instances_each_get_their_own_replies(make_client):
    async with make_client() as first, make_client() as second:
        await first.deposit("1", "INR", "1000")
        await second.deposit("2", "INR", "1000")
        for api, user in ((first, "1"), (second, "2"), (first, "2"), (second, "1")):
            body = {
                "market": "TATA_INR",
                "side": "buy",
                "price": "1",
                "quantity": "1",
                "user_id": user,
            }
            assert (await api.ok("POST", "/api/v1/order", body))["status"] == "new"
        for api in (first, second):
            assert len(await api.ok("GET", "/api/v1/order/open?user_id=1")) == 2


async def test_metrics_count_requests_per_route(client: Client):
    await client.ok("GET", "/api/v1/depth?symbol=TATA_INR")
    status, text, headers = await client.call("GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert b'exchange_api_requests_total{method="GET",route="/api/v1/depth",status="200"}' in text
    assert b"exchange_api_request_duration_seconds_bucket" in text
    assert (await client.ok("GET", "/healthz")) == {"status": "ok"}
    ready = await client.ok("GET", "/readyz")
    assert ready["checks"] == {"redis": "ok", "engine": "ok", "postgres": "ok"}
