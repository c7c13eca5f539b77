"""A load generator for the REST API, with a progress display.

    python benchmarks/loadgen.py --url http://127.0.0.1:8000 --mode order --concurrency 16 \\
        --duration 10 --users 1000 --admin-token TOKEN [--auth apikey|dev] [--fund]

Modes: ``order`` (POST /api/v1/order, one crossing limit order each), ``batch`` (POST
/api/v1/orders with ``--batch`` orders each), ``depth`` (GET /api/v1/depth), ``backpack`` (the
same orders as ``order`` through POST /backpack/api/v1/order, signed with ED25519). Orders come from
``--users`` users at random, buys a few ticks above 100 and sells a few below, so most cross the
resting side and trade while the book stays small. ``--fund`` creates the users (API keys in
apikey mode) and deposits both assets first; users are saved to ``--users-file`` for later runs.

The client is a minimal HTTP/1.1 keep-alive client over trio sockets (pre-encoded request
templates, Content-Length framing): general clients (httpx, aiohttp) cost more CPU per request
than the server under test on a 2-core machine. The last line printed is a JSON object.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_stack import admin_post  # noqa: E402

from exchange.surfaces.native.signing import sign_request  # noqa: E402

MARKET = "TATA_INR"


class Stats:
    def __init__(self) -> None:
        self.latencies_s: list[float] = []
        self.ok = 0
        self.errors = 0
        self.items = 0
        self.statuses: dict[int, int] = {}

    def record(self, status: int, latency_s: float, items: int) -> None:
        self.latencies_s.append(latency_s)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status == 200:
            self.ok += 1
            self.items += items
        else:
            self.errors += 1


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return sorted_values[index]


class Client:
    """One keep-alive connection."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        await self.stream.send_all(raw)
        buffer = self.buffer
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            await self._fill()
        head = bytes(buffer[:end]).lower()
        status = int(head[9:12])
        at = head.find(b"content-length:")
        length = int(head[at + 15 : head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0 else None])
        need = end + 4 + length
        while len(buffer) < need:
            await self._fill()
        body = bytes(buffer[end + 4 : need])
        del buffer[:need]
        return status, body

    async def _fill(self) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buffer += data


def http_request(
    method: str, host: str, target: str, body: bytes, headers: dict[str, str]
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method in ("POST", "DELETE"):
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def fund_users(url: str, token: str, count: int, auth: str) -> list[dict]:
    """Create ``count`` users (API keys in apikey mode) holding plenty of both assets."""
    users = []
    for index in range(count):
        if auth == "apikey":
            # every user also gets an ED25519 key, for the /backpack runs
            private = Ed25519PrivateKey.generate()
            public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            user = admin_post(
                url,
                token,
                "/api/v1/admin/users",
                {"ed25519_public_key": base64.b64encode(public).decode()},
            )
            user["ed25519_seed"] = base64.b64encode(private.private_bytes_raw()).decode()
        else:
            user = {"user_id": f"bench{index}"}
        for asset, amount in (("INR", "100000000"), ("TATA", "1000000")):
            admin_post(
                url,
                token,
                "/api/v1/admin/deposit",
                {"user_id": user["user_id"], "asset": asset, "amount": amount},
            )
        users.append(user)
        if index % 100 == 99:
            print(f"\rfunded {index + 1}/{count} users", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return users


class Workload:
    """Builds the next request's bytes; signs it in apikey mode."""

    def __init__(self, args: argparse.Namespace, users: list[dict], host: str) -> None:
        self.mode = args.mode
        self.batch = args.batch
        self.auth = args.auth
        self.users = users
        self.host = host
        self.random = random.Random(args.seed)
        self._ed25519_keys: dict[str, Ed25519PrivateKey] = {}

    def _order(self, user: dict) -> dict:
        side = self.random.choice(("buy", "sell"))
        offset = self.random.randint(0, 5)
        ticks = 10_000 + offset if side == "buy" else 10_000 - offset
        order = {
            "market": MARKET,
            "side": side,
            "price": f"{ticks // 100}.{ticks % 100:02d}",
            "quantity": str(self.random.randint(1, 5)),
        }
        if self.auth == "dev":
            order["user_id"] = user["user_id"]
        return order

    def _backpack(self, user: dict) -> tuple[bytes, int]:
        """POST /backpack/api/v1/order in Backpack's names, signed with the user's ED25519 key."""
        native = self._order(user)
        order = {
            "symbol": native["market"],
            "side": "Bid" if native["side"] == "buy" else "Ask",
            "orderType": "Limit",
            "price": native["price"],
            "quantity": native["quantity"],
        }
        body = json.dumps(order, separators=(",", ":")).encode()
        timestamp = str(int(time.time() * 1000))
        params = "&".join(f"{key}={order[key]}" for key in sorted(order))
        text = f"instruction=orderExecute&{params}&timestamp={timestamp}&window=5000"
        key = self._ed25519_keys.get(user["user_id"])
        if key is None:
            seed = base64.b64decode(user["ed25519_seed"])
            key = self._ed25519_keys[user["user_id"]] = Ed25519PrivateKey.from_private_bytes(seed)
        headers = {
            "X-API-Key": user["ed25519_public_key"],
            "X-Timestamp": timestamp,
            "X-Window": "5000",
            "X-Signature": base64.b64encode(key.sign(text.encode())).decode(),
        }
        return http_request("POST", self.host, "/backpack/api/v1/order", body, headers), 1

    def next(self) -> tuple[bytes, int]:
        """(request bytes, orders in it)."""
        user = self.random.choice(self.users)
        if self.mode == "backpack":
            return self._backpack(user)
        if self.mode == "depth":
            return http_request("GET", self.host, f"/api/v1/depth?symbol={MARKET}", b"", {}), 0
        if self.mode == "order":
            method, target, items = "POST", "/api/v1/order", 1
            body = json.dumps(self._order(user), separators=(",", ":")).encode()
        else:
            method, target, items = "POST", "/api/v1/orders", self.batch
            orders = [self._order(user) for _ in range(self.batch)]
            body = json.dumps(orders, separators=(",", ":")).encode()
        headers = {}
        if self.auth == "apikey":
            timestamp = str(int(time.time() * 1000))
            headers = {
                "X-API-KEY": user["api_key"],
                "X-TIMESTAMP": timestamp,
                "X-SIGNATURE": sign_request(user["api_secret"], timestamp, method, target, body),
            }
        return http_request(method, self.host, target, body, headers), items


async def run_load(args: argparse.Namespace, users: list[dict]) -> dict:
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    workload = Workload(args, users, f"{host}:{port}")
    stats = Stats()
    started = trio.current_time()
    deadline = started + args.duration

    async def worker() -> None:
        client = Client(await trio.open_tcp_stream(host, port))
        try:
            while trio.current_time() < deadline:
                raw, items = workload.next()
                t0 = time.perf_counter()
                try:
                    status, _body = await client.request(raw)
                except (ConnectionError, trio.BrokenResourceError):
                    # the server may close a keep-alive connection: reconnect, count an error
                    await client.stream.aclose()
                    client = Client(await trio.open_tcp_stream(host, port))
                    status = 0
                stats.record(status, time.perf_counter() - t0, items)
        finally:
            await client.stream.aclose()

    async def progress() -> None:
        last_count, last_time = 0, started
        while True:
            await trio.sleep(1.0)
            now = trio.current_time()
            count = len(stats.latencies_s)
            rate = (count - last_count) / (now - last_time)
            last_count, last_time = count, now
            print(
                f"\r  {args.mode:<5} c={args.concurrency:<3} {now - started:5.1f}/{args.duration}s "
                f"requests={count:<8} {rate:8.0f} req/s  errors={stats.errors}",
                end="",
                file=sys.stderr,
                flush=True,
            )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(progress)
        async with trio.open_nursery() as workers:
            for _ in range(args.concurrency):
                workers.start_soon(worker)
        nursery.cancel_scope.cancel()
    print(file=sys.stderr)
    elapsed = trio.current_time() - started
    latencies = sorted(stats.latencies_s)
    requests = len(latencies)
    return {
        "mode": args.mode,
        "concurrency": args.concurrency,
        "duration_s": round(elapsed, 2),
        "requests": requests,
        "errors": stats.errors,
        "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
        "requests_per_s": round(requests / elapsed, 1),
        "orders_per_s": round(stats.items / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--mode", choices=("order", "batch", "depth", "backpack"), default="order")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--auth", choices=("apikey", "dev"), default="apikey")
    parser.add_argument("--admin-token", default="")
    parser.add_argument("--fund", action="store_true", help="create and fund the users first")
    parser.add_argument("--users-file", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.fund:
        users = fund_users(args.url.rstrip("/"), args.admin_token, args.users, args.auth)
        if args.users_file:
            args.users_file.write_text(json.dumps(users))
    elif args.users_file:
        users = json.loads(args.users_file.read_text())
    else:
        users = [{"user_id": f"bench{i}"} for i in range(args.users)]
    result = trio.run(run_load, args, users)
    print(json.dumps(result))
    return 0 if result["requests"] else 1


if __name__ == "__main__":
    sys.exit(main())
