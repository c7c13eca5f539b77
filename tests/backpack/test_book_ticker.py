"""ccxt.pro's ``watch_bids_asks`` (Backpack's ``bookTicker.M``) against the running stack.

The best bid and ask it ends with must be REST depth's best levels, sizes included, at the same
depth update id; a subscriber joining a non-empty book gets its top at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from decimal import Decimal
from typing import Any

import ccxt
import trio

from tests.backpack.conftest import Exchange, in_thread, run_asyncio

SYMBOL = "TATA/INR"


def top_of(book: dict[str, Any]) -> tuple[Any, ...]:
    """(bid, bid size, ask, ask size) of a ccxt order book."""
    bid, bid_size = book["bids"][0] if book["bids"] else (None, None)
    ask, ask_size = book["asks"][0] if book["asks"] else (None, None)
    return bid, bid_size, ask, ask_size


def top_of_ticker(ticker: dict[str, Any]) -> tuple[Any, ...]:
    return ticker["bid"], ticker["bidVolume"], ticker["ask"], ticker["askVolume"]


async def test_watch_bids_asks_ends_equal_to_rest_depths_best_levels(exchange: Exchange, nursery):
    users = [await exchange.user(TATA="5000", INR="5000000") for _ in range(2)]
    clients = [exchange.sync(u.keys) for u in users]
    for client in clients:
        await in_thread(client.load_markets)
    # deep levels the random orders below never reach: both sides stay non-empty
    await in_thread(clients[0].create_order, SYMBOL, "limit", "buy", 1000, 90)
    await in_thread(clients[1].create_order, SYMBOL, "limit", "sell", 1000, 110)

    first_seen, done = threading.Event(), threading.Event()
    target: dict[str, Any] = {}
    result: dict[str, Any] = {}

    async def watch() -> None:
        pro = exchange.pro()
        try:
            await pro.load_markets()
            tickers = await pro.watch_bids_asks([SYMBOL])
            result["first"] = dict(tickers[SYMBOL])
            first_seen.set()
            follower = asyncio.ensure_future(_collect(pro.watch_bids_asks, [SYMBOL]))
            # the last frame may come before the target is known: look at ccxt's cache
            while True:
                ticker = pro.bidsasks.get(SYMBOL)
                if done.is_set() and int(ticker["info"]["u"]) >= target["nonce"]:
                    result["last"] = dict(ticker)
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
    await in_thread(first_seen.wait, 30)
    assert top_of_ticker(result["first"]) == (90, 1000, 110, 1000)
    first_ms = result["first"]["timestamp"]
    assert abs(first_ms - time.time() * 1000) < 600_000  # E is in microseconds

    rng = random.Random(5)
    resting: list[tuple[int, str]] = []
    for _ in range(60):
        who = rng.randrange(2)
        if resting and rng.random() < 0.25:
            owner, order_id = resting.pop(rng.randrange(len(resting)))
            with contextlib.suppress(ccxt.ExchangeNotAvailable):  # filled meanwhile
                await in_thread(clients[owner].cancel_order, order_id, SYMBOL)
            continue
        side = rng.choice(["buy", "sell"])
        price = 100 + rng.randint(-8, 8) * 0.5
        order = await in_thread(
            clients[who].create_order, SYMBOL, "limit", side, rng.randint(1, 20), price
        )
        if order["status"] == "open":
            resting.append((who, order["id"]))
    # a last order inside the spread changes the top, so a frame carries the final update id
    book = await in_thread(exchange.sync().fetch_order_book, SYMBOL)
    inside = Decimal(str(book["bids"][0][0])) + Decimal("0.01")
    assert inside < Decimal(str(book["asks"][0][0]))
    await in_thread(clients[0].create_order, SYMBOL, "limit", "buy", 3, float(inside))
    rest = await in_thread(exchange.sync().fetch_order_book, SYMBOL)
    target["nonce"] = rest["nonce"]
    done.set()
    with trio.fail_after(30):
        await finished.wait()

    last = result["last"]
    assert int(last["info"]["u"]) == rest["nonce"]
    assert top_of_ticker(last) == top_of(rest)
    assert top_of(rest)[:2] == (float(inside), 3)
    assert last["info"]["e"] == "bookTicker" and last["info"]["s"] == "TATA_INR"
    assert last["timestamp"] >= first_ms


async def _collect(watch, *args) -> None:
    while True:
        await watch(*args)
