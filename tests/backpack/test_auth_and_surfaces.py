"""Signatures refused change nothing; one exchange behind both surfaces; ccxt's async class."""

from __future__ import annotations

import base64
import json
import time

import ccxt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.surfaces.native import signing as hmac_signing
from tests.backpack.conftest import Exchange, Keys, in_thread, run_asyncio

SYMBOL = "TATA/INR"
ORDER = {"symbol": "TATA_INR", "side": "Bid", "orderType": "Limit", "price": "50", "quantity": "2"}


def signed_headers(keys: Keys, text: str, timestamp: int, window: int = 5000) -> dict[str, str]:
    seed = base64.b64decode(keys.secret)
    signature = Ed25519PrivateKey.from_private_bytes(seed).sign(text.encode())
    return {
        "X-API-Key": keys.api_key,
        "X-Signature": base64.b64encode(signature).decode(),
        "X-Timestamp": str(timestamp),
        "X-Window": str(window),
    }


def order_text(order: dict, timestamp: int, window: int = 5000) -> str:
    params = "&".join(f"{k}={order[k]}" for k in sorted(order))
    return f"instruction=orderExecute&{params}&timestamp={timestamp}&window={window}"


async def test_bad_or_stale_signatures_are_refused_and_change_nothing(exchange: Exchange):
    alice = await exchange.user(INR="1000")
    now = int(time.time() * 1000)
    other = Keys.generate()

    forged = signed_headers(other, order_text(ORDER, now), now)
    forged["X-API-Key"] = alice.keys.api_key  # alice's key, someone else's signature
    stale_ts = now - 60_000
    stale = signed_headers(alice.keys, order_text(ORDER, stale_ts), stale_ts)
    tampered = signed_headers(alice.keys, order_text(ORDER, now), now)
    unknown = signed_headers(other, order_text(ORDER, now), now)
    for headers, code in (
        (forged, "INVALID_SIGNATURE"),
        (stale, "UNAUTHORIZED"),
        (unknown, "UNAUTHORIZED"),
        ({}, "UNAUTHORIZED"),
    ):
        status, answer = await exchange.call("POST", "/backpack/api/v1/order", ORDER, headers)
        assert (status, answer["code"]) == (401, code), answer
    body = dict(ORDER, quantity="3")  # signed for 2, sent for 3
    status, answer = await exchange.call("POST", "/backpack/api/v1/order", body, tampered)
    assert (status, answer["code"]) == (401, "INVALID_SIGNATURE")

    a = exchange.sync(alice.keys)
    assert await in_thread(a.fetch_open_orders) == []
    assert (await in_thread(a.fetch_balance))["INR"] == {"free": 1000, "used": 0, "total": 1000}

    wrong = exchange.sync(Keys(alice.keys.api_key, other.secret))
    with pytest.raises(ccxt.AuthenticationError):
        await in_thread(wrong.fetch_balance)
    with pytest.raises(ccxt.AuthenticationError):
        await in_thread(wrong.create_order, SYMBOL, "limit", "buy", 1, 10)
    assert await in_thread(a.fetch_open_orders) == []

    # Backpack's own clients sign raw values: accepted as well
    status, placed = await exchange.call(
        "POST",
        "/backpack/api/v1/order",
        ORDER,
        signed_headers(alice.keys, order_text(ORDER, now), now),
    )
    assert status == 200 and placed["status"] == "New" and "code" not in placed


async def test_one_exchange_behind_both_surfaces(exchange: Exchange):
    alice = await exchange.user(INR="1000")
    bob = await exchange.user(TATA="10")
    # alice places through the native API with her HMAC key …
    body = json.dumps({"market": "TATA_INR", "side": "buy", "price": "100", "quantity": "2"})
    timestamp = str(int(time.time() * 1000))
    headers = {
        "X-API-KEY": alice.hmac_key,
        "X-TIMESTAMP": timestamp,
        "X-SIGNATURE": hmac_signing.sign_request(
            alice.hmac_secret, timestamp, "POST", "/api/v1/order", body.encode()
        ),
    }
    status, native = await exchange.call("POST", "/api/v1/order", json.loads(body), headers)
    assert status == 200, native
    # … sees it through /backpack under the same id, bob fills half of it through /backpack …
    a, b = exchange.sync(alice.keys), exchange.sync(bob.keys)
    [seen] = await in_thread(a.fetch_open_orders, SYMBOL)
    assert (seen["id"], seen["price"], seen["amount"]) == (native["order_id"], 100, 2)
    await in_thread(b.create_order, SYMBOL, "market", "sell", 1)
    # … and cancels the rest through /backpack; balances agree on both surfaces
    cancelled = await in_thread(a.cancel_order, native["order_id"], SYMBOL)
    assert (cancelled["status"], cancelled["filled"]) == ("canceled", 1)
    balance = await in_thread(a.fetch_balance)
    assert (balance["INR"]["free"], balance["TATA"]["free"]) == (900, 1)


async def test_ccxt_async_client(exchange: Exchange):
    alice = await exchange.user(INR="1000", TATA="5")

    async def main():
        client = exchange.asyncio_client(alice.keys)
        try:
            await client.load_markets()
            order = await client.create_order(SYMBOL, "limit", "sell", 5, 120)
            book = await client.fetch_order_book(SYMBOL)
            balance = await client.fetch_balance()
            fetched = await client.fetch_order(order["id"], SYMBOL)
            await client.cancel_all_orders(SYMBOL)
            return order, book, balance, fetched
        finally:
            await client.close()

    order, book, balance, fetched = await run_asyncio(main)
    assert order["status"] == "open" and fetched["id"] == order["id"]
    assert book["asks"] == [[120.0, 5.0]]
    assert balance["TATA"] == {"free": 0.0, "used": 5.0, "total": 5.0}
