"""On /backpack an id that names no order of the caller is 404 RESOURCE_NOT_FOUND, whatever it
looks like, in ``orderId`` and in ``clientId`` (Backpack's code for the native ORDER_NOT_FOUND);
the order history answers such an ``orderId`` with an empty list."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import ccxt
import pytest

from tests.backpack.conftest import Exchange, in_thread
from tests.backpack.test_auth_and_surfaces import signed_headers

SYMBOL = "TATA/INR"
UNKNOWN_ORDER_IDS = ["does-not-exist", "-1", "1" * 40, "999999"]
UNKNOWN_CLIENT_IDS = ["does-not-exist", "-1", -1, "1" * 40, "4294967296" * 4]


def signed(user, instruction: str, params: dict) -> dict[str, str]:
    now = int(time.time() * 1000)
    text = "&".join(f"{k}={params[k]}" for k in sorted(params))
    return signed_headers(
        user.keys, f"instruction={instruction}&{text}&timestamp={now}&window=5000", now
    )


async def test_unknown_ids_are_resource_not_found(exchange: Exchange):
    alice = await exchange.user(INR="1000")
    bob = await exchange.user(TATA="10")
    b = exchange.sync(bob.keys)
    theirs = await in_thread(b.create_order, SYMBOL, "limit", "sell", 1, 50)
    a = exchange.sync(alice.keys)
    for order_id in [*UNKNOWN_ORDER_IDS, theirs["id"]]:
        with pytest.raises(ccxt.ExchangeNotAvailable, match="RESOURCE_NOT_FOUND"):
            await in_thread(a.cancel_order, order_id, SYMBOL)
        with pytest.raises(ccxt.ExchangeNotAvailable, match="RESOURCE_NOT_FOUND"):
            await in_thread(a.fetch_order, order_id, SYMBOL)
        params = {"orderId": order_id}
        status, answer = await exchange.call(
            "GET",
            "/backpack/wapi/v1/history/orders?" + urlencode(params),
            headers=signed(alice, "orderHistoryQueryAll", params),
        )
        assert (status, answer) == (200, []), (order_id, status, answer)
    for client_id in UNKNOWN_CLIENT_IDS:
        params = {"symbol": "TATA_INR", "clientId": client_id}
        status, answer = await exchange.call(
            "GET",
            "/backpack/api/v1/order?" + urlencode(params),
            headers=signed(alice, "orderQuery", params),
        )
        assert (status, answer["code"]) == (404, "RESOURCE_NOT_FOUND"), (client_id, answer)
        status, answer = await exchange.call(
            "DELETE", "/backpack/api/v1/order", params, signed(alice, "orderCancel", params)
        )
        assert (status, answer["code"]) == (404, "RESOURCE_NOT_FOUND"), (client_id, answer)
    # nothing changed: bob's order still rests, alice holds nothing
    assert [o["id"] for o in await in_thread(b.fetch_open_orders, SYMBOL)] == [theirs["id"]]
    assert (await in_thread(a.fetch_balance))["INR"] == {"free": 1000, "used": 0, "total": 1000}
