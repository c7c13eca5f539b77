"""An id that names no order of the caller is 404 ORDER_NOT_FOUND, whatever it looks like.

For ``DELETE /api/v1/order`` and ``GET /api/v1/order``, in ``order_id`` and in
``client_order_id``: text, negative numbers, 40 digits, ids past the 64-bit range, another
user's order, and ids sent as JSON numbers. None of it changes anything. Values that are not ids
at all (``true``, an object, a fraction) stay 400, and so does naming neither or both fields.
"""

from __future__ import annotations

from urllib.parse import urlencode

import orjson
import pytest

from tests.api.conftest import Client

UNKNOWN_IDS = [
    "does-not-exist",
    "-1",
    "1" * 40,
    "9" * 19,  # digits, but beyond any 64-bit id
    "18446744073709551616",  # 2**64
    "",
    " 1",
    "1.5",
    "0x10",
    "١",  # ARABIC-INDIC DIGIT ONE: a digit to str.isdigit, not an id
    "999999",  # a well-formed id no order has
]
UNKNOWN_CLIENT_IDS = ["does-not-exist", "-1", "1" * 40, "", "x" * 37, "x" * 500, "other's"]


async def refusal(client: Client, method: str, path: str, data: bytes | None = None):
    status, body, _ = await client.call(method, path, data=data)
    assert isinstance(body, dict) and "error" in body, (method, path, data, status, body)
    return status, body["error"]["code"]


@pytest.fixture
async def setup(client: Client):
    """User 1 holds an open order with a client id, user 2 a closed one; nothing else exists."""
    mine = await client.ok(
        "POST",
        "/api/v1/order",
        {
            "market": "TATA_INR",
            "side": "buy",
            "price": "10",
            "quantity": "1",
            "client_order_id": "mine",
            "user_id": "1",
        },
    )
    theirs = await client.ok(
        "POST",
        "/api/v1/order",
        {
            "market": "TATA_INR",
            "side": "sell",
            "price": "11",
            "quantity": "1",
            "client_order_id": "other's",
            "user_id": "2",
        },
    )
    return mine, theirs


async def state(client: Client):
    depth = await client.ok("GET", "/api/v1/depth?symbol=TATA_INR")
    del depth["timestamp"]  # the engine's clock, which every command moves
    return (
        await client.ok("GET", "/api/v1/order/open?user_id=1"),
        await client.ok("GET", "/api/v1/order/open?user_id=2"),
        await client.ok("GET", "/api/v1/balances?user_id=1"),
        depth,
    )


async def test_unknown_ids_are_404_in_both_fields_and_change_nothing(client: Client, setup):
    mine, theirs = setup
    before = await state(client)
    lookups = [("order_id", value) for value in [*UNKNOWN_IDS, theirs["order_id"]]] + [
        ("client_order_id", value) for value in UNKNOWN_CLIENT_IDS
    ]
    for field, value in lookups:
        query = urlencode({field: value, "user_id": "1"})
        got = await refusal(client, "GET", f"/api/v1/order?{query}")
        assert got == (404, "ORDER_NOT_FOUND"), (field, value, got)
        for where in ("body", "query"):
            if where == "body":
                body = orjson.dumps({"market": "TATA_INR", field: value, "user_id": "1"})
                got = await refusal(client, "DELETE", "/api/v1/order", body)
            else:
                query = urlencode({"market": "TATA_INR", field: value, "user_id": "1"})
                got = await refusal(client, "DELETE", f"/api/v1/order?{query}")
            assert got == (404, "ORDER_NOT_FOUND"), (field, value, where, got)
    # JSON numbers in a DELETE body name ids too (written raw: past 64 bits orjson cannot)
    for number in ("-1", "1" + "0" * 39, "18446744073709551616", "999999"):
        body = b'{"market": "TATA_INR", "order_id": %s, "user_id": "1"}' % number.encode()
        got = await refusal(client, "DELETE", "/api/v1/order", body)
        assert got == (404, "ORDER_NOT_FOUND"), (number, got)
    assert await state(client) == before
    # the real thing is still found, by either id, and cancelled
    assert (await client.ok("GET", f"/api/v1/order?order_id={mine['order_id']}&user_id=1"))[
        "status"
    ] == "new"
    cancelled = await client.ok(
        "DELETE",
        "/api/v1/order",
        {"market": "TATA_INR", "client_order_id": "mine", "user_id": "1"},
    )
    assert cancelled["order_id"] == mine["order_id"] and cancelled["status"] == "cancelled"


async def test_values_that_are_not_ids_stay_400(client: Client, setup):
    for body in (
        b'{"market": "TATA_INR", "order_id": true, "user_id": "1"}',
        b'{"market": "TATA_INR", "order_id": {"id": 1}, "user_id": "1"}',
        b'{"market": "TATA_INR", "order_id": 1.5, "user_id": "1"}',
        b'{"market": "TATA_INR", "user_id": "1"}',
        b'{"market": "TATA_INR", "order_id": "1", "client_order_id": "mine", "user_id": "1"}',
    ):
        status, code = await refusal(client, "DELETE", "/api/v1/order", body)
        assert status == 400 and code == "INVALID_REQUEST", (body, status, code)
    status, code = await refusal(
        client,
        "DELETE",
        "/api/v1/order",
        b'{"market": "TATA_INR", "client_order_id": 7, "user_id": "1"}',
    )
    assert (status, code) == (400, "INVALID_CLIENT_ORDER_ID")
    status, code = await refusal(
        client, "DELETE", "/api/v1/order", b'{"market": "XYZ_INR", "order_id": "x", "user_id": "1"}'
    )
    assert (status, code) == (400, "INVALID_MARKET")  # the market is checked first
