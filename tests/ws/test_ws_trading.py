"""Trading over the WebSocket against its REST twins: the real ws server, engine, db writer,
Redis, PostgreSQL and API, on the same state.

Each method's result is compared with what its REST endpoint answers for the same state (a
repeated ``client_order_id`` returns the original order, so a place can be compared too).
"""

from __future__ import annotations

from typing import Any

import attrs
import orjson
import pytest
import trio
from ws_helpers import Client, connect, ws_server

from exchange.api.app import create_app
from exchange.db import program as db_writer
from exchange.dev.localservers import RedisServer
from exchange.engine import program as engine_program
from exchange.settings import Settings
from exchange.surfaces.native import signing
from exchange.surfaces.signing_window import wall_clock_ms

MARKET = "TATA_INR"
ADMIN_TOKEN = "ws-trading-admin"
TIMEOUT_S = 20.0


class Rest:
    """JSON over Quart's test client (dev mode: ``user_id`` in the body or query)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else orjson.dumps(body)
        headers = {"X-ADMIN-TOKEN": ADMIN_TOKEN}
        if data is not None:
            headers["Content-Type"] = "application/json"
        response = await self.raw.open(path, method=method, data=data, headers=headers)
        return response.status_code, orjson.loads(await response.get_data())

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, parsed = await self.call(method, path, body)
        assert status == 200, (method, path, parsed)
        return parsed


async def trade(client: Client, method: str, params: Any) -> dict[str, Any]:
    """One request and its answer (nothing else subscribed on ``client``)."""
    client.next_id += 1
    await client.send({"id": client.next_id, "method": method, "params": params})
    answer = await client.recv(TIMEOUT_S)
    assert answer["id"] == client.next_id, answer
    return answer


async def result(client: Client, method: str, params: Any) -> Any:
    answer = await trade(client, method, params)
    assert "result" in answer, answer
    return answer["result"]


@attrs.frozen
class Stack:
    settings: Settings
    port: int
    rest: Rest
    nursery: trio.Nursery


@pytest.fixture
async def stack(redis_url: str, database_url: str, nursery: trio.Nursery):
    settings = Settings(
        redis_url=redis_url,
        database_url=database_url,
        auth_mode="dev",
        admin_token=ADMIN_TOKEN,
        engine_timeout_s=5.0,
    )
    await nursery.start(engine_program.run, settings)
    await nursery.start(db_writer.run, settings)
    app = create_app(settings)
    async with (
        app.test_app() as test_app,
        ws_server(redis_url, database_url=database_url) as port,
    ):
        rest = Rest(test_app.test_client())
        for user in ("alice", "bob"):
            for asset, amount in (("INR", "100000"), ("TATA", "1000")):
                body = {"user_id": user, "asset": asset, "amount": amount}
                await rest.ok("POST", "/api/v1/admin/deposit", body)
        yield Stack(settings, port, rest, nursery)


def order(side: str, price: str, quantity: str = "1", **extra: Any) -> dict[str, Any]:
    return {"market": MARKET, "side": side, "price": price, "quantity": quantity, **extra}


async def test_every_method_equals_its_rest_twin(stack: Stack) -> None:
    rest = stack.rest
    async with connect(stack.port) as ws:
        await ws.request("AUTH", {"user_id": "alice"})
        placed = await result(ws, "order.place", order("buy", "99.5", client_order_id="a1"))
        again = await rest.ok(
            "POST",
            "/api/v1/order",
            {**order("buy", "99.5"), "user_id": "alice", "client_order_id": "a1"},
        )
        assert placed == again and placed["status"] == "new"
        batch = await result(
            ws,
            "orders.place",
            {"orders": [order("buy", "98", client_order_id="a2"), order("sell", "0.001")]},
        )
        assert batch[1]["error"]["code"] == "INVALID_PRICE"
        rest_batch = await rest.ok(
            "POST",
            "/api/v1/orders?user_id=alice",
            [order("buy", "98", client_order_id="a2"), order("sell", "0.001")],
        )
        assert batch == rest_batch
        for method, params, path in (
            (
                "order.status",
                {"order_id": placed["order_id"]},
                f"/api/v1/order?user_id=alice&order_id={placed['order_id']}",
            ),
            (
                "order.status",
                {"client_order_id": "a2"},
                "/api/v1/order?user_id=alice&client_order_id=a2",
            ),
            ("orders.open", {}, "/api/v1/order/open?user_id=alice"),
            (
                "orders.open",
                {"market": MARKET},
                f"/api/v1/order/open?user_id=alice&market={MARKET}",
            ),
            ("balances.get", {}, "/api/v1/balances?user_id=alice"),
        ):
            assert await result(ws, method, params) == await rest.ok("GET", path), method
        cancelled = await result(
            ws, "order.cancel", {"market": MARKET, "order_id": placed["order_id"]}
        )
        assert cancelled["status"] == "cancelled"
        assert cancelled == await rest.ok(
            "GET", f"/api/v1/order?user_id=alice&order_id={placed['order_id']}"
        )
        # a closed order, after the db writer stored it: from PostgreSQL on both
        assert (
            await trade(ws, "order.cancel", {"market": MARKET, "order_id": placed["order_id"]})
        )["error"]["code"] == "ORDER_NOT_FOUND"
        everything = await result(ws, "orders.cancel_all", {"market": MARKET})
        assert [o["client_order_id"] for o in everything] == ["a2"]
        assert (
            await result(ws, "orders.cancel_all", {})
            == await rest.ok("DELETE", "/api/v1/orders?user_id=alice")
            == []
        )
        assert await result(ws, "orders.open", {}) == []


ERRORS = [
    # (method, params, REST method, path, body, code)
    (
        "order.place",
        {"market": "NOPE_INR", "side": "buy", "price": "1", "quantity": "1"},
        "POST",
        "/api/v1/order",
        {"market": "NOPE_INR", "side": "buy", "price": "1", "quantity": "1"},
        "INVALID_MARKET",
    ),
    (
        "order.place",
        order("buy", "1.001"),
        "POST",
        "/api/v1/order",
        order("buy", "1.001"),
        "INVALID_PRICE",
    ),
    (
        "order.place",
        order("buy", "1", "0.001"),
        "POST",
        "/api/v1/order",
        order("buy", "1", "0.001"),
        "INVALID_QUANTITY",
    ),
    ("order.place", order("up", "1"), "POST", "/api/v1/order", order("up", "1"), "INVALID_SIDE"),
    (
        "order.place",
        order("buy", "1000000", "1000"),
        "POST",
        "/api/v1/order",
        order("buy", "1000000", "1000"),
        "INSUFFICIENT_FUNDS",
    ),
    (
        "order.place",
        {**order("buy", "1"), "colour": "red"},
        "POST",
        "/api/v1/order",
        {**order("buy", "1"), "colour": "red"},
        "INVALID_REQUEST",
    ),
    ("orders.place", {"orders": []}, "POST", "/api/v1/orders", [], "INVALID_REQUEST"),
    (
        "order.cancel",
        {"market": MARKET, "order_id": "does-not-exist"},
        "DELETE",
        "/api/v1/order",
        {"market": MARKET, "order_id": "does-not-exist"},
        "ORDER_NOT_FOUND",
    ),
    (
        "order.cancel",
        {"market": MARKET},
        "DELETE",
        "/api/v1/order",
        {"market": MARKET},
        "INVALID_REQUEST",
    ),
    (
        "order.status",
        {"order_id": "12345678901234567"},
        "GET",
        "/api/v1/order?order_id=12345678901234567",
        None,
        "ORDER_NOT_FOUND",
    ),
    (
        "orders.open",
        {"market": "NOPE"},
        "GET",
        "/api/v1/order/open?market=NOPE",
        None,
        "INVALID_MARKET",
    ),
    (
        "orders.cancel_all",
        {"market": "NOPE"},
        "DELETE",
        "/api/v1/orders?market=NOPE",
        None,
        "INVALID_MARKET",
    ),
]


async def test_every_error_equals_its_rest_twin(stack: Stack) -> None:
    async with connect(stack.port) as ws:
        answer = await trade(ws, "balances.get", {})
        assert answer["error"]["code"] == "UNAUTHORIZED"
        await ws.request("AUTH", {"user_id": "bob"})
        for method, params, rest_method, path, body, code in ERRORS:
            answer = await trade(ws, method, params)
            if body is not None and isinstance(body, dict):
                body = {**body, "user_id": "bob"}
            sep = "&" if "?" in path else "?"
            status, rest_answer = await stack.rest.call(
                rest_method, f"{path}{sep}user_id=bob", body
            )
            assert answer["error"] == rest_answer["error"], (method, params)
            assert answer["error"]["code"] == code and status >= 400
        # malformed frames: an error frame each (with the id when one could be read), still open
        for frame, frame_id in (
            ("not json", None),
            ("[1, 2]", None),
            ('{"id": 7, "method": "order.fly", "params": {}}', 7),
            ('{"id": 8, "method": "order.place", "params": [1]}', 8),
            ('{"id": "' + "x" * 37 + '", "method": "balances.get", "params": {}}', "x" * 37),
        ):
            await ws.send(frame)
            answer = await ws.recv()
            assert answer["id"] == frame_id and answer["error"]["code"] == "INVALID_REQUEST", frame
        assert "result" in await trade(ws, "balances.get", {})
        # a JSON number is read exactly (never through a float)
        await ws.send(
            '{"id": 9, "method": "order.place", "params": {"market": "TATA_INR", '
            '"side": "buy", "price": 0.3, "quantity": 0.1}}'
        )
        placed = await ws.recv()
        assert placed["result"]["price"] == "0.3" and placed["result"]["quantity"] == "0.1"


async def test_place_then_cancel_at_once_always_cancels_and_users_are_isolated(
    stack: Stack,
) -> None:
    count = 100
    async with connect(stack.port) as alice, connect(stack.port) as bob:
        await alice.request("AUTH", {"user_id": "alice"})
        await bob.request("AUTH", {"user_id": "bob"})
        for n in range(count):  # pipelined: nothing awaited between sends
            await alice.send(
                {
                    "id": f"p{n}",
                    "method": "order.place",
                    "params": order("buy", "50", client_order_id=f"o{n}"),
                }
            )
            await alice.send(
                {
                    "id": f"c{n}",
                    "method": "order.cancel",
                    "params": {"market": MARKET, "client_order_id": f"o{n}"},
                }
            )
            await bob.send(
                {
                    "id": f"x{n}",
                    "method": "order.cancel",
                    "params": {"market": MARKET, "client_order_id": f"o{n}"},
                }
            )
        answers = {}
        with trio.fail_after(TIMEOUT_S):
            while len(answers) < 2 * count:
                frame = await alice.recv()
                answers[frame["id"]] = frame
        for n in range(count):
            assert answers[f"p{n}"]["result"]["client_order_id"] == f"o{n}"
            assert answers[f"c{n}"]["result"]["status"] == "cancelled", answers[f"c{n}"]
        for _ in range(count):  # bob can name none of alice's orders
            assert (await bob.recv())["error"]["code"] == "ORDER_NOT_FOUND"
        assert await result(bob, "orders.open", {}) == []
        assert await result(alice, "orders.open", {}) == []


async def test_private_streams_and_trading_share_a_connection(stack: Stack) -> None:
    async with connect(stack.port) as ws:
        await ws.request("AUTH", {"user_id": "alice"})
        await ws.subscribe("orders")
        await ws.send({"id": "p", "method": "order.place", "params": order("buy", "40")})
        frames = [await ws.recv(), await ws.recv()]  # the response and the stream, any order
        response = next(f for f in frames if f.get("id") == "p")
        pushed = next(f for f in frames if f.get("stream") == "orders")
        placed = response["result"]
        # the stream's order object also names quote_quantity (the streams' own shape)
        stream_order = {k: v for k, v in pushed["data"]["order"].items() if k != "quote_quantity"}
        assert stream_order == {k: v for k, v in placed.items() if k != "fills"}


async def test_a_connection_closed_mid_flight_loses_no_order(stack: Stack) -> None:
    count = 200
    async with connect(stack.port) as ws:
        await ws.request("AUTH", {"user_id": "bob"})
        for n in range(count):
            await ws.send(
                {
                    "id": n,
                    "method": "order.place",
                    "params": order("sell", "900", "0.01", client_order_id=f"m{n}"),
                }
            )
        acknowledged = [(await ws.recv())["id"] for _ in range(count // 4)]
    # closed with replies still in flight: every acknowledged order exists, none twice
    placed = await stack.rest.ok("GET", "/api/v1/order/open?user_id=bob")
    names = [o["client_order_id"] for o in placed]
    assert len(names) == len(set(names))
    assert {f"m{n}" for n in acknowledged} <= set(names)
    # What the server had read is carried out; what it had not read when the client left is
    # not: once the in-flight requests are done, the orders are a prefix of those sent.
    with trio.fail_after(TIMEOUT_S):
        while True:
            await trio.sleep(0.5)
            later = await stack.rest.ok("GET", "/api/v1/order/open?user_id=bob")
            if len(later) == len(placed):
                break
            placed = later
    numbers = sorted(int(o["client_order_id"][1:]) for o in placed)
    assert numbers == list(range(len(numbers))) and len(numbers) >= len(acknowledged)


async def test_a_client_that_does_not_read_is_closed_1008_and_nothing_is_doubled(
    stack: Stack,
) -> None:
    from exchange.ws.server import Options
    from exchange.ws.session import Limits

    # It reads only once it has sent everything: the frame under way when it is kicked, and
    # the close frame, wait for it that long.
    limits = Limits(outbox_batches=8, close_timeout_s=TIMEOUT_S)
    options = Options(limits=limits, send_buffer_bytes=4096)
    sent = 3000
    async with (
        ws_server(
            stack.settings.redis_url, options=options, database_url=stack.settings.database_url
        ) as port,
        connect(port) as ws,
    ):
        await ws.request("AUTH", {"user_id": "alice"})
        with trio.move_on_after(TIMEOUT_S):
            for n in range(sent):  # never reads
                await ws.send(
                    {
                        "id": n,
                        "method": "order.place",
                        "params": order("buy", "1", "0.01", client_order_id=f"s{n}"),
                    }
                )
        with trio.fail_after(TIMEOUT_S):
            while not ws.ws.closed:
                try:
                    await ws.ws.get_message()
                except Exception:  # noqa: BLE001 - closed
                    break
        assert ws.ws.closed.code == 1008
    placed = await stack.rest.ok("GET", "/api/v1/order/open?user_id=alice")
    names = [o["client_order_id"] for o in placed]
    assert 0 < len(names) < sent and len(names) == len(set(names))
    # what was applied is a prefix of what was sent: nothing skipped in the middle
    assert sorted(int(name[1:]) for name in names) == list(range(len(names)))


async def test_engine_down_timeout_and_restart_behave_as_for_rest(
    redis_url: str, database_url: str, nursery: trio.Nursery
) -> None:
    settings = Settings(
        redis_url=redis_url, database_url=database_url, auth_mode="dev", engine_timeout_s=0.5
    )
    app = create_app(settings)
    async with (
        app.test_app() as test_app,
        ws_server(redis_url, database_url=database_url, engine_timeout_s=0.5) as port,
        connect(port) as ws,
    ):
        rest = Rest(test_app.test_client())
        engine = trio.CancelScope()

        async def run_engine(task_status=trio.TASK_STATUS_IGNORED) -> None:
            with engine:
                await engine_program.run(settings, task_status=task_status)

        await nursery.start(run_engine)
        await ws.request("AUTH", {"user_id": "carol"})
        with trio.fail_after(TIMEOUT_S):
            while "result" not in await trade(ws, "balances.get", {}):
                await trio.sleep(0.05)
        engine.cancel()
        # Just stopped: while its heartbeat looks fresh a request is queued and times out
        # (outcome unknown); the ws twin and REST, asked at the same moment, answer alike.
        ws.next_id += 1
        await ws.send(
            {
                "id": ws.next_id,
                "method": "order.place",
                "params": order("buy", "1", client_order_id="t1"),
            }
        )
        status, rest_answer = await rest.call(
            "POST", "/api/v1/order", {**order("buy", "1"), "user_id": "carol"}
        )
        answer = await ws.recv()
        assert answer["error"]["code"] in ("ENGINE_TIMEOUT", "SERVICE_UNAVAILABLE")
        assert (status, rest_answer["error"]["code"]) in (
            (504, "ENGINE_TIMEOUT"),
            (503, "SERVICE_UNAVAILABLE"),
        )
        with trio.fail_after(TIMEOUT_S):  # heartbeat expired: refused at once
            while (await trade(ws, "balances.get", {}))["error"]["code"] != "SERVICE_UNAVAILABLE":
                await trio.sleep(0.1)
        with trio.fail_after(0.4):
            assert (await trade(ws, "orders.open", {}))["error"]["code"] == "SERVICE_UNAVAILABLE"
        status, rest_answer = await rest.call("GET", "/api/v1/balances?user_id=carol")
        assert status == 503 and rest_answer["error"]["code"] == "SERVICE_UNAVAILABLE"
        engine = trio.CancelScope()
        await nursery.start(run_engine)
        with trio.fail_after(TIMEOUT_S):  # back: the same connection trades again
            while "result" not in await trade(ws, "balances.get", {}):
                await trio.sleep(0.1)
        refused = await trade(ws, "order.place", order("buy", "1", client_order_id="t2"))
        assert refused["error"]["code"] == "INSUFFICIENT_FUNDS"  # carol holds nothing
        engine.cancel()


async def test_signed_auth_trades_and_shares_the_rest_rate_limit_bucket(
    redis_url: str, database_url: str, nursery: trio.Nursery
) -> None:
    """apikey mode: AUTH signed with the key's secret. The key's bucket is one budget for its
    REST requests (the API process) and its ws requests (the ws process), reconciled through
    Redis (exchange.ratelimit_share): a burst of 5 spent partly on each is spent."""
    limits = {"rate_limit_private_per_s": 0.001, "rate_limit_private_burst": 5.0}
    settings = Settings(
        redis_url=redis_url,
        database_url=database_url,
        auth_mode="apikey",
        admin_token=ADMIN_TOKEN,
        engine_timeout_s=5.0,
        **limits,
    )
    await nursery.start(engine_program.run, settings)
    app = create_app(settings)
    async with (
        app.test_app() as test_app,
        ws_server(redis_url, auth_mode="apikey", database_url=database_url, **limits) as port,
        connect(port) as ws,
    ):
        rest = Rest(test_app.test_client())
        user = await rest.ok("POST", "/api/v1/admin/users", {})
        body = {"user_id": user["user_id"], "asset": "INR", "amount": "1000"}
        await rest.ok("POST", "/api/v1/admin/deposit", body)
        timestamp = str(wall_clock_ms())
        bad = await ws.request(
            "AUTH", {"api_key": user["api_key"], "timestamp": timestamp, "signature": "00" * 32}
        )
        assert bad["error"]["code"] == "UNAUTHORIZED"
        assert (await trade(ws, "balances.get", {}))["error"]["code"] == "UNAUTHORIZED"
        signature = signing.sign(user["api_secret"], signing.auth_payload(timestamp))
        auth = {"api_key": user["api_key"], "timestamp": timestamp, "signature": signature}
        assert (await ws.request("AUTH", auth))["result"] is None
        # a user_id in the params is ignored: the key decides who acts
        placed = await result(ws, "order.place", {**order("buy", "10"), "user_id": "someone"})
        assert placed["status"] == "new"
        balances = await result(ws, "balances.get", {})
        assert balances["INR"] == {"available": "990", "locked": "10"}
        await trio.sleep(0.5)  # two tokens spent on the ws: the API learns it

        async def rest_balances() -> int:
            now = str(wall_clock_ms())
            target = "/api/v1/balances"
            headers = {
                "X-API-KEY": user["api_key"],
                "X-TIMESTAMP": now,
                "X-SIGNATURE": signing.sign(
                    user["api_secret"], signing.payload(now, "GET", target, b"")
                ),
            }
            response = await rest.raw.open(target, method="GET", headers=headers)
            return response.status_code

        assert [await rest_balances() for _ in range(4)] == [200, 200, 200, 429]
        await trio.sleep(0.5)  # three spent on REST: the ws server learns it
        limited = await trade(ws, "orders.open", {})
        assert limited["error"]["code"] == "RATE_LIMITED"


async def test_a_redis_outage_is_answered_as_rest_answers_it(
    tmp_path, nursery: trio.Nursery
) -> None:
    """Redis stops under a trading connection: requests are refused (SERVICE_UNAVAILABLE, or
    ENGINE_TIMEOUT for one caught mid-send), the connection stays, and trading resumes."""
    with RedisServer.start(tmp_path / "redis", appendfsync="always") as own_redis:
        settings = Settings(redis_url=own_redis.url, auth_mode="dev", engine_timeout_s=1.0)
        await nursery.start(engine_program.run, settings)
        async with ws_server(own_redis.url, engine_timeout_s=1.0) as port, connect(port) as ws:
            await ws.request("AUTH", {"user_id": "dave"})
            with trio.fail_after(TIMEOUT_S):
                while "result" not in await trade(ws, "balances.get", {}):
                    await trio.sleep(0.05)
            await trio.to_thread.run_sync(own_redis.stop)
            codes = set()
            with trio.fail_after(TIMEOUT_S):
                while "SERVICE_UNAVAILABLE" not in codes:
                    codes.add((await trade(ws, "orders.open", {}))["error"]["code"])
            assert codes <= {"SERVICE_UNAVAILABLE", "ENGINE_TIMEOUT"}
            await trio.to_thread.run_sync(own_redis.restart)
            with trio.fail_after(TIMEOUT_S):
                while "result" not in await trade(ws, "balances.get", {}):
                    await trio.sleep(0.1)
            assert await result(ws, "orders.open", {}) == []
