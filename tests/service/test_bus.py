"""The thread-bridged Redis client and the pub/sub subscriber, on the test's private Redis."""

from __future__ import annotations

import time

import pytest
import trio

from exchange.bus import RedisBridge
from exchange.dev.localservers import free_port
from exchange.errors import ServiceUnavailable
from exchange.names import id_ms, market_channel, parse_id, user_channel
from exchange.pubsub import open_subscriber


def test_names_and_ids():
    assert market_channel("TATA_INR") == "exchange:md:TATA_INR"
    assert user_channel("alice") == "exchange:user:alice"
    assert parse_id(b"1700000000000-12") == (1700000000000, 12)
    assert parse_id("5-0") < parse_id("5-1") < parse_id("6-0")
    assert id_ms(b"1700000000000-12") == 1700000000000


async def test_streams_and_pipelines(redis_url):
    async with RedisBridge(redis_url) as bus:
        first = await bus.xadd("s", {b"k": b"1"})
        second = await bus.xadd("s", {b"k": b"2"})
        assert await bus.last_id("s") == second
        assert await bus.last_id("missing") is None
        assert await bus.xread({"s": first}, count=10, block_ms=10) == [
            [b"s", [(second, {b"k": b"2"})]]
        ]
        assert await bus.xread({"s": second}, count=10, block_ms=10) == []
        assert [e[0] for e in await bus.xrange("s", b"(" + first)] == [second]

        def build(pipe):
            pipe.set("a", b"1")
            pipe.get("a")
            pipe.xadd("s", {b"k": b"3"})

        results = await bus.pipeline(build, transaction=True)
        assert results[:2] == [True, b"1"]
        await bus.set("h", b"x", px=10_000)
        assert await bus.get("h") == b"x"


async def test_unreachable_redis_is_service_unavailable_at_once():
    async with RedisBridge(f"redis://127.0.0.1:{free_port()}/0") as bus:
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable):
            await bus.xadd("s", {b"k": b"1"})
        with pytest.raises(ServiceUnavailable):
            await bus.pipeline(lambda pipe: pipe.get("x"))
        assert time.monotonic() - started < 2.0


async def receive_n(subscriber, n: int) -> list[tuple[str, bytes]]:
    got = []
    with trio.fail_after(5):
        while len(got) < n:
            got.append(await subscriber.receive())
    return got


async def test_subscriber_delivers_in_order_and_follows_subscriptions(redis_url):
    async with RedisBridge(redis_url) as bus, open_subscriber(redis_url) as subscriber:
        await subscriber.subscribe("c1", "c2")
        for n in range(300):
            await bus.call(bus.client.publish, "c1" if n % 2 else "c2", b"%d" % n)
        got = await receive_n(subscriber, 300)
        assert [int(data) for _, data in got] == list(range(300))
        assert {channel for channel, _ in got} == {"c1", "c2"}

        await subscriber.unsubscribe("c2")
        await bus.call(bus.client.publish, "c2", b"dropped")
        await bus.call(bus.client.publish, "c1", b"kept")
        assert await receive_n(subscriber, 1) == [("c1", b"kept")]
        await subscriber.subscribe("c3")
        assert await bus.call(bus.client.publish, "c3", b"x") == 1
        assert await receive_n(subscriber, 1) == [("c3", b"x")]


async def test_subscriber_applies_backpressure_without_losing_messages(redis_url):
    async with RedisBridge(redis_url) as bus, open_subscriber(redis_url, buffer=4) as subscriber:
        await subscriber.subscribe("c")
        for n in range(50):
            await bus.call(bus.client.publish, "c", b"%d" % n)
        await trio.sleep(0.2)  # the thread waits on the full channel meanwhile
        got = await receive_n(subscriber, 50)
        assert [int(data) for _, data in got] == list(range(50))


async def test_receive_ready_takes_what_has_arrived_without_waiting(redis_url):
    async with RedisBridge(redis_url) as bus, open_subscriber(redis_url) as subscriber:
        await subscriber.subscribe("c")
        assert subscriber.receive_ready() == []
        for n in range(3):
            await bus.call(bus.client.publish, "c", b"%d" % n)
        assert await subscriber.receive() == ("c", b"0")
        with trio.fail_after(5):
            ready: list = []
            while len(ready) < 2:
                ready += subscriber.receive_ready()
                await trio.sleep(0.01)
        assert ready == [("c", b"1"), ("c", b"2")]
