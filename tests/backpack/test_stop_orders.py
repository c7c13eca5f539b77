"""Stop orders through ccxt's sync ``backpack`` class, as it sends them: ``triggerPrice`` and
``triggerQuantity``; statuses ``TriggerPending`` (ccxt: open) and, once triggered, ordinary ones."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import ccxt
import pytest
import trio

from tests.backpack.conftest import Exchange, eventually, in_thread, run_asyncio

SYMBOL = "TATA/INR"


async def test_stop_orders_through_ccxt(exchange: Exchange):
    alice = await exchange.user(TATA="100", INR="10000")
    bob = await exchange.user(TATA="100", INR="10000")
    a, b = exchange.sync(alice.keys), exchange.sync(bob.keys)
    await in_thread(a.load_markets)
    await in_thread(b.load_markets)

    # no trade yet: refused
    with pytest.raises(ccxt.InvalidOrder, match="INVALID_PRICE"):
        await in_thread(
            lambda: a.create_order(SYMBOL, "market", "sell", 1, None, {"triggerPrice": 95})
        )
    await in_thread(b.create_order, SYMBOL, "limit", "sell", 1, 100)
    await in_thread(a.create_order, SYMBOL, "limit", "buy", 1, 100)  # last price 100

    # a stop-loss market sell and a take-profit limit sell, both waiting
    stop_loss = await in_thread(
        lambda: a.create_order(SYMBOL, "market", "sell", 2, None, {"triggerPrice": 95})
    )
    assert stop_loss["info"]["status"] == "TriggerPending" and stop_loss["status"] == "open"
    assert stop_loss["triggerPrice"] == 95 and stop_loss["amount"] == 2
    assert stop_loss["info"]["triggerQuantity"] == "2"
    take_profit = await in_thread(
        lambda: a.create_order(SYMBOL, "limit", "sell", 1, 111, {"triggerPrice": 110})
    )
    assert take_profit["info"]["status"] == "TriggerPending"
    opened = await in_thread(a.fetch_open_orders, SYMBOL)
    assert {o["id"] for o in opened} == {stop_loss["id"], take_profit["id"]}
    assert {o["info"]["status"] for o in opened} == {"TriggerPending"}
    assert (await in_thread(a.fetch_balance))["TATA"]["used"] == 3.0
    assert (await in_thread(b.fetch_order_book, SYMBOL))["asks"] == []  # never in depth

    # a trigger equal to the last price is refused
    with pytest.raises(ccxt.InvalidOrder, match="INVALID_PRICE"):
        await in_thread(
            lambda: a.create_order(SYMBOL, "market", "sell", 1, None, {"triggerPrice": 100})
        )

    # the price falls to 95: the stop-loss sells into bob's bids
    await in_thread(b.create_order, SYMBOL, "limit", "buy", 3, 95)
    await in_thread(a.create_order, SYMBOL, "limit", "sell", 1, 95)
    sold = await in_thread(a.fetch_order, stop_loss["id"], SYMBOL)
    assert (sold["status"], sold["filled"], sold["triggerPrice"]) == ("closed", 2, 95)
    assert sold["info"]["triggeredAt"] is not None

    # the take-profit still waits: cancel it
    cancelled = await in_thread(a.cancel_order, take_profit["id"], SYMBOL)
    assert cancelled["status"] == "canceled" and cancelled["triggerPrice"] == 110
    assert await in_thread(a.fetch_open_orders, SYMBOL) == []
    assert (await in_thread(a.fetch_balance))["TATA"]["used"] == 0.0

    # in the order history once the writer has it
    async def history():
        found = await in_thread(a.fetch_orders, SYMBOL)
        stops = [o for o in found if o["triggerPrice"] is not None]
        return stops if len(stops) == 2 else None

    stops = {o["id"]: o for o in await eventually(history)}
    assert stops[stop_loss["id"]]["status"] == "closed"
    assert stops[take_profit["id"]]["status"] == "canceled"


async def test_watch_orders_sees_a_stop_placed_and_triggered(exchange: Exchange, nursery):
    alice = await exchange.user(TATA="10", INR="10000")
    bob = await exchange.user(TATA="10", INR="10000")
    a, b = exchange.sync(alice.keys), exchange.sync(bob.keys)
    await in_thread(a.load_markets)
    await in_thread(b.load_markets)
    live, done = threading.Event(), threading.Event()
    expect: dict[str, Any] = {}
    seen: list[tuple[str, str, str, Any]] = []  # (id, raw event, ccxt status, triggerPrice)

    async def watch() -> None:
        pro = exchange.pro(alice.keys)

        async def collect() -> None:
            while True:
                for o in await pro.watch_orders(SYMBOL):
                    seen.append((o["id"], o["info"].get("e"), o["status"], o["triggerPrice"]))
                    live.set()

        try:
            await pro.load_markets()
            task = asyncio.ensure_future(collect())
            for _ in range(2000):
                if done.is_set() and (expect["id"], "orderFill", "closed", 95) in seen:
                    break
                await asyncio.sleep(0.02)
            task.cancel()
        finally:
            await pro.close()

    finished = trio.Event()

    async def run_watch() -> None:
        await run_asyncio(watch)
        finished.set()

    nursery.start_soon(run_watch)
    with trio.fail_after(20):  # probe until alice's order stream is live
        while not live.is_set():
            probe = await in_thread(a.create_order, SYMBOL, "limit", "buy", 1, 1)
            await in_thread(a.cancel_order, probe["id"], SYMBOL)
            await trio.sleep(0.1)

    await in_thread(b.create_order, SYMBOL, "limit", "sell", 1, 100)
    await in_thread(a.create_order, SYMBOL, "limit", "buy", 1, 100)  # last price 100
    stop = await in_thread(
        lambda: a.create_order(SYMBOL, "market", "sell", 1, None, {"triggerPrice": 95})
    )
    await in_thread(b.create_order, SYMBOL, "limit", "buy", 2, 95)
    await in_thread(a.create_order, SYMBOL, "limit", "sell", 1, 95)  # falls to 95: triggers
    expect["id"] = stop["id"]
    done.set()
    with trio.fail_after(40):
        await finished.wait()
    mine = [s[1:] for s in seen if s[0] == stop["id"]]
    assert mine[0] == ("triggerPlaced", "open", 95)
    assert mine[-1] == ("orderFill", "closed", 95)
