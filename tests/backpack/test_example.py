"""examples/ccxt_market_maker.py quotes around the mid, trades, and stays within its bounds."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import trio

from tests.backpack.conftest import Exchange, in_thread, run_asyncio

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ccxt_market_maker.py"


def load_example():
    spec = importlib.util.spec_from_file_location("ccxt_market_maker", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_market_maker_quotes_and_keeps_inventory_bounded(exchange: Exchange, nursery):
    example = load_example()
    maker = await exchange.user(INR="100000", TATA="1000")
    taker = await exchange.user(INR="100000", TATA="1000")
    args = argparse.Namespace(
        api=exchange.base,
        ws=f"ws://127.0.0.1:{exchange.ws_port}",
        key=maker.keys.api_key,
        secret=maker.keys.secret,
        symbol="TATA/INR",
        seconds=4.0,
        spread_bps=50.0,
        size=1.0,
        max_inventory=3.0,
        fallback_mid=100.0,
    )
    results = {}

    async def run_maker():
        results["summary"] = await run_asyncio(lambda: example.main_async(args), timeout_s=30)

    nursery.start_soon(run_maker)
    t = exchange.sync(taker.keys)
    await in_thread(t.load_markets)
    sold = 0
    # the taker keeps selling into the maker's bid: the maker must stop buying at +3
    while "summary" not in results:
        book = await in_thread(t.fetch_order_book, "TATA/INR")
        if book["bids"]:
            order = await in_thread(t.create_order, "TATA/INR", "market", "sell", 1)
            sold += order["filled"] or 0
        await trio.sleep(0.1)
    summary = results["summary"]
    assert summary["requotes"] >= 1
    assert 1 <= summary["bought"] <= 3 + 1  # a quote in flight at the bound may still fill
    assert summary["inventory_change"] <= 4
    assert await in_thread(exchange.sync(maker.keys).fetch_open_orders, "TATA/INR") == []
