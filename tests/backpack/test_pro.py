"""ccxt.pro's ``backpack`` class against the running stack: order book, trades, orders, balance.

ccxt.pro runs under asyncio in a thread of its own; the test (trio) drives the market through
ccxt's sync client meanwhile. The threads talk through ``threading.Event`` and a dict.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from typing import Any

import ccxt
import trio

from tests.backpack.conftest import Exchange, in_thread, run_asyncio

SYMBOL = "TATA/INR"


async def test_watch_order_book_ends_equal_to_rest_depth(exchange: Exchange, nursery):
    users = [await exchange.user(TATA="1000", INR="1000000") for _ in range(2)]
    clients = [exchange.sync(u.keys) for u in users]
    for client in clients:
        await in_thread(client.load_markets)
    watching, done = threading.Event(), threading.Event()
    target: dict[str, Any] = {}
    result: dict[str, Any] = {}

    async def watch() -> None:
        pro = exchange.pro()
        pro.options["watchOrderBook"] = {"snapshotDelay": 10}
        try:
            await pro.load_markets()
            follower = asyncio.ensure_future(_collect(pro.watch_order_book, SYMBOL))
            watching.set()
            # the last delta may come before the target is known: look at ccxt's book itself
            while True:
                book = pro.orderbooks.get(SYMBOL)
                nonce = None if book is None else book["nonce"]
                if done.is_set() and nonce is not None and nonce >= target["nonce"]:
                    result["book"] = {"bids": book["bids"][:], "asks": book["asks"][:]}
                    result["nonce"] = nonce
                    follower.cancel()
                    return
                await asyncio.sleep(0.02)
        finally:
            await pro.close()

    finished = trio.Event()

    async def run_watch() -> None:
        await run_asyncio(watch)
        finished.set()

    nursery.start_soon(run_watch)
    await in_thread(watching.wait, 30)
    rng = random.Random(9)
    resting: list[tuple[int, str]] = []
    for _ in range(120):
        who = rng.randrange(2)
        if resting and rng.random() < 0.2:
            owner, order_id = resting.pop(rng.randrange(len(resting)))
            with contextlib.suppress(ccxt.ExchangeNotAvailable):  # filled meanwhile
                await in_thread(clients[owner].cancel_order, order_id, SYMBOL)
            continue
        side = rng.choice(["buy", "sell"])
        price = round(100 + rng.randint(-10, 10) * 0.5, 2)
        amount = rng.randint(1, 20)
        order = await in_thread(clients[who].create_order, SYMBOL, "limit", side, amount, price)
        if order["status"] == "open":
            resting.append((who, order["id"]))
    rest = await in_thread(exchange.sync().fetch_order_book, SYMBOL)
    target["nonce"] = rest["nonce"]
    done.set()
    with trio.fail_after(30):
        await finished.wait()
    assert result["nonce"] == rest["nonce"]
    assert result["book"] == {"bids": rest["bids"], "asks": rest["asks"]}
    assert rest["bids"] and rest["asks"]


async def test_private_streams_see_exactly_the_callers_updates(exchange: Exchange, nursery):
    alice = await exchange.user(TATA="10", INR="10000")
    bob = await exchange.user(TATA="10", INR="10000")
    a, b = exchange.sync(alice.keys), exchange.sync(bob.keys)
    await in_thread(a.load_markets)
    await in_thread(b.load_markets)
    seen_first, done = threading.Event(), threading.Event()
    expect: dict[str, Any] = {}
    result: dict[str, Any] = {}

    async def watch() -> None:
        pro = exchange.pro(alice.keys)
        try:
            await pro.load_markets()
            tasks = [
                asyncio.ensure_future(_collect(pro.watch_trades, SYMBOL)),
                asyncio.ensure_future(_collect(pro.watch_balance)),
                asyncio.ensure_future(_collect(pro.watch_orders)),
            ]
            # updates may all arrive before the expectation is known: look at ccxt's caches
            for _ in range(2000):
                orders = {o["id"]: o for o in (pro.orders or [])}
                if orders:
                    seen_first.set()
                balance = pro.balance or {}
                if (
                    done.is_set()
                    and orders.get(expect["last"], {}).get("status") == "canceled"
                    and balance.get("INR", {}).get("free") == expect["inr_free"]
                    and len(pro.trades.get(SYMBOL, [])) >= 1
                ):
                    break
                await asyncio.sleep(0.02)
            result["orders"] = [dict(o) for o in pro.orders or []]
            result["balance"] = {k: dict(v) for k, v in balance.items() if k in ("INR", "TATA")}
            result["trades"] = list(pro.trades.get(SYMBOL, []))
            for task in tasks:
                task.cancel()
        finally:
            await pro.close()

    finished = trio.Event()

    async def run_watch() -> None:
        await run_asyncio(watch)
        finished.set()

    nursery.start_soon(run_watch)
    # probe until alice's order stream is live: a resting order at 1 and its cancel
    probes = []
    with trio.fail_after(20):
        while not seen_first.is_set():
            probe = await in_thread(a.create_order, SYMBOL, "limit", "buy", 1, 1)
            probes.append(probe["id"])
            await in_thread(a.cancel_order, probe["id"], SYMBOL)
            await trio.sleep(0.1)

    bob_sell = await in_thread(b.create_order, SYMBOL, "limit", "sell", 2, 100)
    bought = await in_thread(a.create_order, SYMBOL, "limit", "buy", 1, 100)
    resting = await in_thread(a.create_order, SYMBOL, "limit", "buy", 1, 90)
    await in_thread(b.cancel_order, bob_sell["id"], SYMBOL)
    await in_thread(a.cancel_order, resting["id"], SYMBOL)
    balance = await in_thread(a.fetch_balance)
    expect.update(last=resting["id"], inr_free=balance["INR"]["free"])
    done.set()
    with trio.fail_after(40):
        await finished.wait()

    orders = {o["id"]: o for o in result["orders"]}
    assert bob_sell["id"] not in orders
    # only alice's orders (the first probes may precede the subscription)
    assert (
        {bought["id"], resting["id"]} <= set(orders) <= set(probes) | {bought["id"], resting["id"]}
    )
    assert (orders[bought["id"]]["status"], orders[bought["id"]]["side"]) == ("closed", "buy")
    assert orders[resting["id"]]["status"] == "canceled"
    for asset in ("INR", "TATA"):
        assert result["balance"][asset]["free"] == balance[asset]["free"]
        assert result["balance"][asset]["used"] == balance[asset]["used"]
    assert [(t["price"], t["amount"], t["side"]) for t in result["trades"]] == [(100, 1, "buy")]


async def _collect(watch, *args) -> None:
    while True:
        await watch(*args)
