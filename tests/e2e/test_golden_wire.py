"""The wire, recorded: every REST response and WebSocket frame of one seeded order flow.

The whole stack runs (engine, db writer, API on a real socket, WebSocket server; the
``tests/backpack`` fixture pieces). Six WebSocket connections listen — native public and private
(one per user) on ``/``, Backpack public and private on ``/backpack`` — while a fixed script
trades through native REST (HMAC-signed) and Backpack REST (ED25519-signed): resting orders, a
crossing order that fills partly, market orders, a batch, cancels, cancel-all, stop orders
(placed, triggered, cancelled), every read, and refusals. Each REST answer (method, path,
status, content type, body) and each frame, in order per connection, is compared with
``golden_wire.json``; ``GOLDEN_RECORD=1`` writes it anew.

Only what differs from run to run is replaced: ids (consistently: the first id seen is
``<id1>`` wherever it appears again), keys and secrets, epoch timestamps and ISO times. Key
order and decimal strings stay as sent, and a body must be compact JSON as today. Between steps
the test waits until every connection is quiet, so no frame of one step can be coalesced with
the next; frames are compared per connection, never across them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import attrs
import orjson
import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from tests.backpack import conftest as backpack_stack
from tests.backpack.conftest import ADMIN_TOKEN, Exchange

GOLDEN = Path(__file__).with_name("golden_wire.json")
RECORD = os.environ.get("GOLDEN_RECORD") == "1"
MARKET = "TATA_INR"
QUIET_S = 0.3  # no frame on any connection for this long: the step's frames are all out
STEP_TIMEOUT_S = 10.0
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
EPOCH_MS_MIN = 10**12  # integers this large are epoch times (ms from 2001 on, or µs)
# Which keys hold which kind of id. Ids are numbered per kind, so order 1 and trade 1 differ.
ID_KINDS = {
    "user_id": "user",
    "api_key": "key",
    "api_secret": "secret",
    "order_id": "order",
    "orderId": "order",
    "trade_id": "trade",
    "tradeId": "trade",
}
# Backpack stream events (by "e") name ids with single letters.
EVENT_ID_KINDS = {
    "trade": {"a": "order", "b": "order", "t": "trade"},
    "order": {"i": "order", "t": "trade"},
}
QUERY_KINDS = {"order_id": "order", "orderId": "order", "startTime": None, "endTime": None}


# --- normalizing ------------------------------------------------------------------------------


class Normalizer:
    """Replaces run-varying values by placeholders: the n-th order id seen is ``<order n>``
    wherever it appears (a string stays a string, an integer becomes ``<int order n>``); epoch
    times become ``<epoch ms>``/``<epoch us>``, ISO times ``<iso>``."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str], str] = {}

    def id(self, kind: str, value: Any) -> Any:
        if value is None or isinstance(value, bool):
            return value
        count = sum(1 for k, _ in self.ids if k == kind)
        name = self.ids.setdefault((kind, str(value)), f"{kind} {count + 1}")
        return f"<{name}>" if isinstance(value, str) else f"<int {name}>"

    def value(self, value: Any) -> Any:
        if isinstance(value, dict):
            kinds = self.kinds(value)
            return {
                k: self.id(kinds[k], v) if k in kinds else self.value(v) for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, int) and not isinstance(value, bool) and value >= EPOCH_MS_MIN:
            return "<epoch ms>" if value < 10**14 else "<epoch us>"
        if isinstance(value, str) and ISO.match(value):
            return "<iso>"
        return value

    @staticmethod
    def kinds(obj: dict[str, Any]) -> dict[str, str]:
        """The keys of ``obj`` that hold ids, and of which kind."""
        kinds = {k: kind for k, kind in ID_KINDS.items() if k in obj}
        if "is_buyer_maker" in obj or "isBuyerMaker" in obj:
            kinds["id"] = "trade"  # a trade (REST or native stream)
        elif "orderType" in obj:
            kinds["id"] = "order"  # a Backpack order
        event = obj.get("e")
        if isinstance(event, str):
            family = "order" if event.startswith("order") else event
            kinds.update({k: v for k, v in EVENT_ID_KINDS.get(family, {}).items() if k in obj})
        return kinds

    def path(self, target: str) -> str:
        path, _, query = target.partition("?")
        if not query:
            return target
        pairs = []
        for pair in query.split("&"):
            key, _, raw = pair.partition("=")
            if key in QUERY_KINDS:
                kind = QUERY_KINDS[key]
                raw = "<epoch s>" if kind is None else str(self.id(kind, raw))
            pairs.append(f"{key}={raw}")
        return f"{path}?{'&'.join(pairs)}"

    def kline_event(self, frame: dict[str, Any]) -> dict[str, Any]:
        """A Backpack kline's ``t`` is its start in epoch seconds, as a string."""
        data = frame.get("data")
        if isinstance(data, dict) and data.get("e") == "kline" and "t" in data:
            frame = dict(frame, data=dict(data, t="<epoch s>"))
        return frame


# --- signing (the contract's and Backpack's rules, written out here so this test leans on no
# module of the exchange that a refactor may move) ---------------------------------------------


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def hmac_headers(user: User, method: str, target: str, body: bytes) -> dict[str, str]:
    ts = str(now_ms())
    signature = hmac_hex(user, f"{ts}{method}{target}".encode() + body)
    return {"X-API-KEY": user.api_key, "X-TIMESTAMP": ts, "X-SIGNATURE": signature}


def hmac_hex(user: User, message: bytes) -> str:
    return hmac.new(user.api_secret.encode(), message, hashlib.sha256).hexdigest()


def _pairs(params: dict[str, Any]) -> str:
    def text(v: Any) -> str:
        return ("true" if v else "false") if isinstance(v, bool) else str(v)

    return "&".join(f"{k}={text(params[k])}" for k in sorted(params))


def ed25519_headers(user: User, instruction: str, params: Any) -> dict[str, str]:
    ts, window = now_ms(), 5000
    items = params if isinstance(params, list) else [params]
    text = (
        "".join(f"instruction={instruction}&" + (f"{_pairs(p)}&" if p else "") for p in items)
        + f"timestamp={ts}&window={window}"
    )
    signature = user.private_key.sign(text.encode())
    return {
        "X-API-Key": user.public_key,
        "X-Signature": base64.b64encode(signature).decode(),
        "X-Timestamp": str(ts),
        "X-Window": str(window),
    }


def subscribe_signature(user: User) -> list[str]:
    ts, window = now_ms(), 5000
    text = f"instruction=subscribe&timestamp={ts}&window={window}"
    signature = base64.b64encode(user.private_key.sign(text.encode())).decode()
    return [user.public_key, signature, str(ts), str(window)]


@attrs.frozen
class User:
    name: str
    user_id: str
    api_key: str
    api_secret: str
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> str:
        raw = self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return base64.b64encode(raw).decode()


def seeded_key(name: str) -> Ed25519PrivateKey:
    """The same key every run, so its public key (in the admin answer) is fixed."""
    return Ed25519PrivateKey.from_private_bytes(name.encode().ljust(32, b"\0"))


# --- the recorder -----------------------------------------------------------------------------


@attrs.define
class Listener:
    """One WebSocket connection and every frame it received, in order."""

    name: str
    ws: WebSocketConnection
    frames: list[str] = attrs.Factory(list)

    async def send(self, frame: Any) -> None:
        await self.ws.send_message(json.dumps(frame))

    async def read(self, wire: Wire) -> None:
        try:
            while True:
                self.frames.append(await self.ws.get_message())
                wire.last_frame_at = trio.current_time()
        except ConnectionClosed:
            return

    async def settle(self) -> None:
        """Until this connection received no frame for QUIET_S."""
        with trio.fail_after(STEP_TIMEOUT_S):
            while True:
                count = len(self.frames)
                await trio.sleep(QUIET_S)
                if len(self.frames) == count:
                    return

    async def wait_for(self, count: int) -> None:
        with trio.fail_after(STEP_TIMEOUT_S):
            while len(self.frames) < count:
                await trio.sleep(0.01)


@attrs.define
class Wire:
    exchange: Exchange
    rest: list[dict[str, Any]] = attrs.Factory(list)
    listeners: list[Listener] = attrs.Factory(list)
    last_frame_at: float = 0.0

    def http(self, method: str, target: str, body: bytes | None, headers: dict[str, str]):
        request = urllib.request.Request(
            self.exchange.base + target, data=body, method=method, headers=headers
        )
        if body is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers.get("Content-Type"), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Content-Type"), exc.read()

    async def call(
        self,
        method: str,
        target: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        *,
        raw: bytes | None = None,
        record: bool = True,
    ) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else orjson.dumps(body))
        status, content_type, answer = await trio.to_thread.run_sync(
            self.http, method, target, data, dict(headers or {})
        )
        parsed = json.loads(answer) if answer else None
        if record:
            self.rest.append(
                {
                    "method": method,
                    "path": target,
                    "status": status,
                    "content_type": content_type,
                    # the body's bytes are compact JSON, so the parsed form (key order kept) is
                    # all of it: checked here, once per answer
                    "compact": answer == _compact(parsed) if answer else None,
                    "body": parsed,
                }
            )
        return status, parsed

    async def quiet(self) -> None:
        """Until no connection received a frame for QUIET_S."""
        with trio.fail_after(STEP_TIMEOUT_S):
            while True:
                idle = trio.current_time() - self.last_frame_at
                if idle >= QUIET_S:
                    return
                await trio.sleep(QUIET_S - idle)

    def recording(self) -> dict[str, Any]:
        normalize = Normalizer()
        rest = [
            normalize.value(answer) | {"path": normalize.path(answer["path"])}
            for answer in self.rest
        ]
        ws = {
            listener.name: [
                normalize.value(normalize.kline_event(json.loads(f))) for f in listener.frames
            ]
            for listener in self.listeners
        }
        return {"rest": rest, "ws": ws}


def _compact(parsed: Any) -> bytes:
    return json.dumps(parsed, separators=(",", ":"), ensure_ascii=False).encode()


# --- the flow ---------------------------------------------------------------------------------


class Native:
    """Native REST, signed with the user's HMAC key."""

    def __init__(self, wire: Wire, user: User) -> None:
        self.wire, self.user = wire, user

    async def call(self, method: str, path: str, body: Any = None, **query: Any):
        target = path + (f"?{urlencode(query)}" if query else "")
        data = b"" if body is None else orjson.dumps(body)
        headers = hmac_headers(self.user, method, target, data)
        return await self.wire.call(method, target, raw=data or None, headers=headers)

    async def raw(self, method: str, path: str, data: bytes):
        headers = hmac_headers(self.user, method, path, data)
        return await self.wire.call(method, path, raw=data, headers=headers)


class Backpack:
    """Backpack REST under /backpack, signed with the user's ED25519 key."""

    def __init__(self, wire: Wire, user: User) -> None:
        self.wire, self.user = wire, user

    async def call(self, method: str, path: str, instruction: str, params: Any = None):
        headers = ed25519_headers(self.user, instruction, params or {})
        if method == "GET":
            target = "/backpack" + path + (f"?{urlencode(params)}" if params else "")
            return await self.wire.call(method, target, headers=headers)
        return await self.wire.call(method, "/backpack" + path, params, headers)


async def admin(wire: Wire, path: str, body: Any) -> Any:
    status, answer = await wire.call("POST", path, body, {"X-ADMIN-TOKEN": ADMIN_TOKEN})
    assert status == 200, (path, status, answer)
    return answer


async def make_user(wire: Wire, name: str, **deposits: str) -> User:
    key = seeded_key(name)
    public = base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    made = await admin(wire, "/api/v1/admin/users", {"ed25519_public_key": public.decode()})
    for asset, amount in deposits.items():
        await admin(
            wire,
            "/api/v1/admin/deposit",
            {"user_id": made["user_id"], "asset": asset, "amount": amount},
        )
    return User(name, made["user_id"], made["api_key"], made["api_secret"], key)


async def connect(wire: Wire, nursery: trio.Nursery, name: str, path: str) -> Listener:
    ws = await nursery.start(_open_ws, f"ws://127.0.0.1:{wire.exchange.ws_port}{path}")
    listener = Listener(name, ws)
    wire.listeners.append(listener)
    nursery.start_soon(listener.read, wire)
    return listener


async def _open_ws(url: str, task_status=trio.TASK_STATUS_IGNORED) -> None:
    async with open_websocket_url(url) as ws:
        task_status.started(ws)
        await trio.sleep_forever()


async def subscribe_native(listener: Listener, frame: dict[str, Any]) -> None:
    """Send and wait for the answer (the native server answers every request) and the
    snapshots it starts. The answer and a snapshot race (the hub sends snapshots on its own
    task), so the answer is put first and the snapshots kept in the order they came."""
    seen = len(listener.frames)
    await listener.send(frame)
    await listener.wait_for(seen + 1)
    await listener.settle()
    burst = listener.frames[seen:]
    listener.frames[seen:] = sorted(burst, key=lambda f: "stream" in json.loads(f))


async def subscribe_backpack(listener: Listener, frame: dict[str, Any]) -> None:
    """Backpack SUBSCRIBE has no answer: a bad frame after it does, and frames of one connection
    are handled in order, so its error frame says the subscription is in place."""
    seen = len(listener.frames)
    await listener.send(frame)
    await listener.send({"method": "PING"})
    await listener.wait_for(seen + 1)


async def wait_for_history(native: Native, order_id: str) -> None:
    """Until PostgreSQL holds ``order_id`` among the closed orders (the writer applies the
    engine's batches in order, so everything before it is there too)."""
    target = f"/api/v1/orders/history?{urlencode({'market': MARKET})}"
    with trio.fail_after(STEP_TIMEOUT_S):
        while True:
            headers = hmac_headers(native.user, "GET", target, b"")
            _, rows = await native.wire.call("GET", target, headers=headers, record=False)
            if any(row["order_id"] == order_id for row in rows or []):
                return
            await trio.sleep(0.05)


async def wait_clear_of_hour() -> None:
    """The flow takes seconds; started just before an hour ends, its trades would fall in two
    hourly candles. Wait for the new hour then."""
    seconds_left = 3600 - time.time() % 3600
    if seconds_left < 30:
        await trio.sleep(seconds_left + 0.5)


async def run_flow(wire: Wire, nursery: trio.Nursery) -> None:
    await wait_clear_of_hour()
    alice = await make_user(wire, "alice", TATA="100", INR="10000")
    bob = await make_user(wire, "bob", TATA="50", INR="5000")

    # listeners first, on an empty book
    public = await connect(wire, nursery, "native public", "/")
    await subscribe_native(
        public,
        {
            "method": "SUBSCRIBE",
            "params": [f"depth@{MARKET}", f"trade@{MARKET}", f"ticker@{MARKET}"],
            "id": 1,
        },
    )
    await subscribe_native(
        public, {"method": "SUBSCRIBE", "params": [f"kline_1h@{MARKET}"], "id": "two"}
    )
    await subscribe_native(public, {"method": "SUBSCRIBE", "params": ["nope@X"], "id": 3})
    await subscribe_native(public, {"method": "SUBSCRIBE", "params": "bad"})
    privates = {}
    for user in (alice, bob):
        listener = await connect(wire, nursery, f"native private {user.name}", "/ws")
        await subscribe_native(listener, {"method": "SUBSCRIBE", "params": ["orders"], "id": 1})
        ts = str(now_ms())
        signature = hmac_hex(user, f"{ts}AUTH".encode())
        params = {"api_key": user.api_key, "timestamp": ts, "signature": signature}
        await subscribe_native(listener, {"method": "AUTH", "params": params, "id": 2})
        await subscribe_native(
            listener, {"method": "SUBSCRIBE", "params": ["orders", "balances"], "id": 3}
        )
        privates[user.name] = listener
    bp_public = await connect(wire, nursery, "backpack public", "/backpack")
    await subscribe_backpack(
        bp_public,
        {
            "method": "SUBSCRIBE",
            "params": [
                f"depth.{MARKET}",
                f"trade.{MARKET}",
                f"ticker.{MARKET}",
                f"bookTicker.{MARKET}",
                f"kline.1h.{MARKET}",
            ],
        },
    )
    for user in (alice, bob):
        listener = await connect(wire, nursery, f"backpack private {user.name}", "/backpack")
        await subscribe_backpack(
            listener,
            {
                "method": "SUBSCRIBE",
                "params": ["account.orderUpdate", "account.balanceUpdate"],
                "signature": subscribe_signature(user),
            },
        )
    await wire.quiet()

    async def step(call, user: User | None = None):  # type: ignore[no-untyped-def]
        """One mutating call; then its frames (at least one on its user's orders stream)."""
        seen = len(privates[user.name].frames) if user else 0
        answer = await call
        if user is not None:
            await privates[user.name].wait_for(seen + 1)
        await wire.quiet()
        return answer

    a, b = Native(wire, alice), Native(wire, bob)
    await wire.call("GET", "/api/v1/markets")
    await wire.call("GET", f"/api/v1/depth?symbol={MARKET}")
    await a.call("GET", "/api/v1/balances")

    # resting orders, then a crossing one that fills partly and rests
    order = {"market": MARKET, "side": "sell", "price": "101", "quantity": "2"}
    await step(a.call("POST", "/api/v1/order", dict(order, client_order_id="a-1")), alice)
    await step(a.call("POST", "/api/v1/order", dict(order, price="102.5", quantity="3")), alice)
    _, resting_buy = await step(
        a.call("POST", "/api/v1/order", dict(order, side="buy", price="99.01", quantity="1")),
        alice,
    )
    await step(
        b.call(
            "POST",
            "/api/v1/order",
            {"market": MARKET, "side": "buy", "price": "101.5", "quantity": "3.25"},
        ),
        bob,
    )
    # market orders: by quantity, by quote amount
    await step(
        b.call(
            "POST",
            "/api/v1/order",
            {"market": MARKET, "side": "buy", "type": "market", "quantity": "0.5"},
        ),
        bob,
    )
    await step(
        b.call(
            "POST",
            "/api/v1/order",
            {"market": MARKET, "side": "buy", "type": "market", "quote_quantity": "100"},
        ),
        bob,
    )
    # a batch with one bad item
    await step(
        a.call(
            "POST",
            "/api/v1/orders",
            [
                dict(order, price="105", quantity="1"),
                dict(order, price="105.001", quantity="1"),
                dict(order, side="buy", price="98", quantity="1.5", time_in_force="GTC"),
            ],
        ),
        alice,
    )
    await step(
        a.call("DELETE", "/api/v1/order", {"market": MARKET, "order_id": resting_buy["order_id"]}),
        alice,
    )
    # refusals change nothing
    await a.call("POST", "/api/v1/order", dict(order, price="100.005"))
    await a.call("DELETE", "/api/v1/order", {"market": MARKET, "order_id": "999999"})
    await a.call("GET", "/api/v1/order", order_id="does-not-exist")
    await b.call("POST", "/api/v1/order", dict(order, side="buy", quantity="100000"))
    await a.raw("POST", "/api/v1/order", b'{"market": "TATA_INR", "side": ')
    await a.call("POST", "/api/v1/order", dict(order, market="NOPE_INR"))
    await wire.call("GET", f"/api/v1/depth?symbol={MARKET}&limit=0")
    await wire.call("POST", "/api/v1/order", order)  # unsigned
    await wire.quiet()

    # reads
    await wait_for_history(a, resting_buy["order_id"])
    await a.call("GET", "/api/v1/order/open", market=MARKET)
    await b.call("GET", "/api/v1/order/open")
    await a.call("GET", "/api/v1/order", order_id=resting_buy["order_id"])
    await a.call("GET", "/api/v1/order", client_order_id="a-1")
    await wire.call("GET", f"/api/v1/depth?symbol={MARKET}")
    await wire.call("GET", f"/api/v1/depth?market={MARKET}&limit=1")
    await wire.call("GET", f"/api/v1/trades?symbol={MARKET}")
    await wire.call("GET", f"/api/v1/trades?symbol={MARKET}&limit=2")
    await wire.call("GET", f"/api/v1/klines?market={MARKET}&interval=1h")
    await wire.call("GET", f"/api/v1/klines?market={MARKET}&interval=1d")
    await wire.call("GET", "/api/v1/tickers")
    await wire.call("GET", f"/api/v1/ticker?symbol={MARKET}")
    for user in (a, b):
        await user.call("GET", "/api/v1/balances")
        await user.call("GET", "/api/v1/fills", market=MARKET)
        await user.call("GET", "/api/v1/orders/history", market=MARKET)

    # the Backpack surface on the same exchange
    pa, pb = Backpack(wire, alice), Backpack(wire, bob)
    for path in ("/api/v1/markets", "/api/v1/assets", "/api/v1/ticker", "/api/v1/depth"):
        params = {"symbol": MARKET} if path in ("/api/v1/ticker", "/api/v1/depth") else None
        await wire.call("GET", "/backpack" + path + (f"?{urlencode(params)}" if params else ""))
    await pa.call("GET", "/api/v1/capital", "balanceQuery")
    ask = {"symbol": MARKET, "side": "Ask", "orderType": "Limit", "price": "103", "quantity": "1"}
    await step(pb.call("POST", "/api/v1/order", "orderExecute", dict(ask, clientId=7)), bob)
    # alice sells into bob's 101.5 bid (1.25 of it) and rests the rest
    await step(
        pa.call(
            "POST",
            "/api/v1/order",
            "orderExecute",
            dict(ask, price="101.5", quantity="2", timeInForce="GTC"),
        ),
        alice,
    )
    market = {"symbol": MARKET, "orderType": "Market"}
    await step(
        pb.call("POST", "/api/v1/order", "orderExecute", dict(market, side="Ask", quantity="0.5")),
        bob,
    )
    await step(
        pb.call(
            "POST", "/api/v1/order", "orderExecute", dict(market, side="Bid", quoteQuantity="50")
        ),
        bob,
    )
    _, batch = await step(
        pb.call(
            "POST",
            "/api/v1/orders",
            "orderExecute",
            [
                dict(ask, price="110", quantity="1"),
                dict(ask, price="111", quantity="0.5", postOnly=True),
                dict(ask, price="110.001"),
            ],
        ),
        bob,
    )
    await step(
        pb.call(
            "DELETE", "/api/v1/order", "orderCancel", {"symbol": MARKET, "orderId": batch[0]["id"]}
        ),
        bob,
    )
    await pb.call("POST", "/api/v1/order", "orderExecute", dict(ask, price="103.005"))
    await pb.call("DELETE", "/api/v1/order", "orderCancel", {"symbol": MARKET, "orderId": "1"})
    await pb.call("POST", "/api/v1/order", "orderExecute", dict(ask, side="Bid", quantity="100000"))
    headers = ed25519_headers(bob, "orderExecute", {})
    await wire.call("POST", "/backpack/api/v1/order", raw=b"[1, 2", headers=headers)
    await wire.quiet()

    await pb.call("GET", "/api/v1/orders", "orderQueryAll", {"symbol": MARKET})
    await pb.call("GET", "/api/v1/order", "orderQuery", {"symbol": MARKET, "clientId": "7"})
    await pb.call("GET", "/api/v1/capital", "balanceQuery")
    await wire.call("GET", f"/backpack/api/v1/depth?symbol={MARKET}")
    await wire.call("GET", f"/backpack/api/v1/trades?symbol={MARKET}&limit=10")
    start = int(time.time()) // 86400 * 86400
    await wire.call("GET", f"/backpack/api/v1/klines?symbol={MARKET}&interval=1h&startTime={start}")
    await wire.call("GET", "/backpack/api/v1/tickers")

    # cancel-all on both surfaces
    await step(
        pb.call("DELETE", "/api/v1/orders", "orderCancelAll", {"symbol": MARKET}),
        bob,
    )
    _, cancelled = await step(a.call("DELETE", "/api/v1/orders", market=MARKET), alice)
    await a.call("DELETE", "/api/v1/orders")  # nothing left
    await a.call("GET", "/api/v1/order", client_order_id="a-1")

    # stop orders: alice's stop-limit sell waits below the last price, a trade at 96 triggers
    # it and it sells into bob's bid; bob's Backpack stop buy waits above and is cancelled
    stop = {"market": MARKET, "side": "sell", "price": "95", "quantity": "1"}
    await a.call("POST", "/api/v1/order", dict(stop, trigger_price="96", post_only=True))
    _, alice_stop = await step(
        a.call("POST", "/api/v1/order", dict(stop, trigger_price="96")), alice
    )
    bid = {"symbol": MARKET, "side": "Bid", "orderType": "Limit", "price": "96", "quantity": "1"}
    await step(pb.call("POST", "/api/v1/order", "orderExecute", bid), bob)
    await step(a.call("POST", "/api/v1/order", dict(stop, price="96", quantity="0.5")), alice)
    await a.call("GET", "/api/v1/order", order_id=alice_stop["order_id"])
    _, bob_stop = await step(
        pb.call(
            "POST",
            "/api/v1/order",
            "orderExecute",
            {
                "symbol": MARKET,
                "side": "Bid",
                "orderType": "Market",
                "triggerPrice": "120",
                "triggerQuantity": "1",
            },
        ),
        bob,
    )
    await pb.call("GET", "/api/v1/orders", "orderQueryAll", {"symbol": MARKET})
    await step(
        pb.call(
            "DELETE", "/api/v1/order", "orderCancel", {"symbol": MARKET, "orderId": bob_stop["id"]}
        ),
        bob,
    )
    await step(a.call("DELETE", "/api/v1/orders", market=MARKET), alice)

    # history, once PostgreSQL has all of it
    await wait_for_history(b, batch[1]["id"])
    await wait_for_history(a, alice_stop["order_id"])
    await wait_for_history(b, bob_stop["id"])
    await pb.call("GET", "/wapi/v1/history/orders", "orderHistoryQueryAll", {"symbol": MARKET})
    await pa.call(
        "GET", "/wapi/v1/history/fills", "fillHistoryQueryAll", {"symbol": MARKET, "limit": 100}
    )
    await wire.call("GET", f"/api/v1/trades?symbol={MARKET}")
    await wire.call("GET", f"/api/v1/ticker?symbol={MARKET}")
    await wire.call("GET", "/backpack/api/v1/tickers")
    for user in (a, b):
        await user.call("GET", "/api/v1/orders/history", market=MARKET)
        await user.call("GET", "/api/v1/fills", market=MARKET)
        await user.call("GET", "/api/v1/balances")
    await wire.quiet()


# --- the test ---------------------------------------------------------------------------------


exchange = backpack_stack.exchange  # the fixture: engine, db writer, API and ws server


@pytest.fixture
def stack(request: pytest.FixtureRequest, exchange: Exchange) -> Exchange:
    """The ``tests/backpack`` stack, once: the storage mode is not on the wire."""
    if request.node.callspec.params.get("postgres_server") == "timescaledb":
        pytest.skip("recorded on plain PostgreSQL; the storage mode is not on the wire")
    return exchange


@pytest.mark.slow
async def test_the_wire_is_as_recorded(stack: Exchange) -> None:
    wire = Wire(stack)
    async with trio.open_nursery() as nursery:
        await run_flow(wire, nursery)
        nursery.cancel_scope.cancel()
    got = wire.recording()
    if RECORD:
        GOLDEN.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
        return
    expected = json.loads(GOLDEN.read_text())
    assert len(got["rest"]) == len(expected["rest"])
    for answer, recorded in zip(got["rest"], expected["rest"], strict=True):
        assert _ordered(answer) == _ordered(recorded), recorded["path"]
    assert list(got["ws"]) == list(expected["ws"])
    for name, frames in expected["ws"].items():
        assert _ordered(got["ws"][name]) == _ordered(frames), name


def _ordered(value: Any) -> Any:
    """``value`` with each object as a list of pairs, so key order counts in ``==``."""
    if isinstance(value, dict):
        return [(k, _ordered(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_ordered(v) for v in value]
    return value
