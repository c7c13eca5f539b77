"""A small market maker written with ccxt.pro, trading on a local exchange through /backpack.

    python examples/ccxt_market_maker.py --setup ADMIN_TOKEN        # once: a funded user + keys
    python examples/ccxt_market_maker.py --key KEY --secret SEED --seconds 30

It follows the book with ``watch_order_book`` and its own fills with ``watch_orders``, and quotes
one bid and one ask ``--spread-bps`` around the mid (``--fallback-mid`` while the book is empty or
one-sided), moving its quotes when the mid moves by a tick or more. Inventory is kept within
``--max-inventory`` base units of where it started: at the bound it quotes only the side that
brings it back. It runs for ``--seconds`` and then cancels its orders and prints a summary.

Nothing here knows it is not talking to Backpack Exchange: the only change is the URLs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time
import urllib.request

import ccxt.pro
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def setup_user(api: str, admin_token: str, deposits: dict[str, str]) -> dict[str, str]:
    """Register a user with a fresh ED25519 key through the admin API and fund it."""
    private = Ed25519PrivateKey.generate()
    public = base64.b64encode(
        private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ).decode()

    def admin(path: str, body: dict) -> dict:
        request = urllib.request.Request(
            api + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "X-ADMIN-TOKEN": admin_token},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    user = admin("/api/v1/admin/users", {"ed25519_public_key": public})
    for asset, amount in deposits.items():
        admin(
            "/api/v1/admin/deposit", {"user_id": user["user_id"], "asset": asset, "amount": amount}
        )
    seed = base64.b64encode(private.private_bytes_raw()).decode()
    return {"user_id": user["user_id"], "key": public, "secret": seed}


class MarketMaker:
    def __init__(self, exchange: ccxt.pro.backpack, args: argparse.Namespace) -> None:
        self.exchange = exchange
        self.args = args
        self.symbol = args.symbol
        self.quoted_mid: float | None = None
        self.start_base = 0.0
        self.base = 0.0
        self.filled = {"buy": 0.0, "sell": 0.0}
        self.requotes = 0

    async def run(self) -> None:
        ex = self.exchange
        market = (await ex.load_markets())[self.symbol]
        self.tick = market["precision"]["price"]
        base_code = market["base"]
        balance = await ex.fetch_balance()
        self.start_base = self.base = balance[base_code]["total"] or 0.0
        await ex.cancel_all_orders(self.symbol)
        deadline = time.monotonic() + self.args.seconds
        fills = asyncio.ensure_future(self.follow_fills(base_code))
        try:
            while time.monotonic() < deadline:
                try:
                    book = await asyncio.wait_for(ex.watch_order_book(self.symbol), 1.0)
                except TimeoutError:
                    book = None  # a quiet market: requote on the fallback mid
                await self.requote(self.mid(book))
        finally:
            fills.cancel()
            await ex.cancel_all_orders(self.symbol)

    def mid(self, book: dict | None) -> float:
        if book and book["bids"] and book["asks"]:
            return (book["bids"][0][0] + book["asks"][0][0]) / 2
        return self.quoted_mid or self.args.fallback_mid

    async def follow_fills(self, base_code: str) -> None:
        seen: dict[str, float] = {}
        while True:
            for order in await self.exchange.watch_orders(self.symbol):
                done = order.get("info", {}).get("z")  # cumulative executed quantity
                if done is None:
                    continue
                before = seen.get(order["id"], 0.0)
                now = float(done)
                if now > before:
                    seen[order["id"]] = now
                    self.filled[order["side"]] += now - before
                    self.base += (now - before) * (1 if order["side"] == "buy" else -1)

    async def requote(self, mid: float) -> None:
        if self.quoted_mid is not None and abs(mid - self.quoted_mid) < self.tick:
            return
        ex, args = self.exchange, self.args
        await ex.cancel_all_orders(self.symbol)
        inventory = self.base - self.start_base
        half = mid * args.spread_bps / 20_000
        orders = []
        if inventory < args.max_inventory:
            orders.append(
                {
                    "symbol": self.symbol,
                    "type": "limit",
                    "side": "buy",
                    "amount": args.size,
                    "price": mid - half,
                }
            )
        if inventory > -args.max_inventory:
            orders.append(
                {
                    "symbol": self.symbol,
                    "type": "limit",
                    "side": "sell",
                    "amount": args.size,
                    "price": mid + half,
                }
            )
        if orders:
            await ex.create_orders(orders)
        self.quoted_mid = mid
        self.requotes += 1


async def main_async(args: argparse.Namespace) -> dict:
    urls = {
        "public": f"{args.api}/backpack",
        "private": f"{args.api}/backpack",
        "ws": {"public": f"{args.ws}/backpack", "private": f"{args.ws}/backpack"},
    }
    exchange = ccxt.pro.backpack(
        {"urls": {"api": urls}, "apiKey": args.key, "secret": args.secret, "enableRateLimit": False}
    )
    maker = MarketMaker(exchange, args)
    try:
        await maker.run()
    finally:
        await exchange.close()
    return {
        "requotes": maker.requotes,
        "bought": maker.filled["buy"],
        "sold": maker.filled["sell"],
        "inventory_change": maker.base - maker.start_base,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--ws", default="ws://127.0.0.1:8080")
    parser.add_argument("--key", help="base64 ED25519 public key")
    parser.add_argument("--secret", help="base64 ED25519 seed")
    parser.add_argument("--setup", metavar="ADMIN_TOKEN", help="create a funded user and exit")
    parser.add_argument("--symbol", default="TATA/INR")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--spread-bps", type=float, default=50.0)
    parser.add_argument("--size", type=float, default=1.0)
    parser.add_argument("--max-inventory", type=float, default=10.0)
    parser.add_argument("--fallback-mid", type=float, default=100.0)
    args = parser.parse_args()
    if args.setup:
        print(json.dumps(setup_user(args.api, args.setup, {"INR": "100000", "TATA": "1000"})))
        return 0
    if not (args.key and args.secret):
        parser.error("--key and --secret are required (make them with --setup ADMIN_TOKEN)")
    summary = asyncio.run(main_async(args))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
