"""The gateway's deadlines on trio's MockClock, with a scripted Redis and a scripted engine."""

from __future__ import annotations

import orjson
import pytest
import trio

from exchange import codec
from exchange.errors import EngineTimeout, ErrorCode, ServiceUnavailable
from exchange.gateway import HEARTBEAT_POLL_S, HEARTBEAT_STALE_S, open_gateway
from exchange.models import Deposit, GetBalances, Rejection
from exchange.names import (
    BODY_FIELD,
    COMMAND_STREAM,
    HEARTBEAT_KEY,
    QUERY_STREAM,
    REPLY_TO_FIELD,
    REQUEST_ID_FIELD,
    reply_stream,
)

from .fakes import FakeBus

TIMEOUT_S = 5.0
COMMAND = Deposit("alice", "INR", 100)


def live_bus() -> FakeBus:
    bus = FakeBus()
    bus.streams.keys[HEARTBEAT_KEY] = orjson.dumps({"seq": 0, "log_id": "0-0", "lag": 0, "ts": 0})
    return bus


def echo(fields: dict) -> bytes:
    """The scripted engine's answer: a rejection quoting the request's body."""
    return codec.encode(Rejection(ErrorCode.CONFLICT, fields[BODY_FIELD].decode()))


async def scripted_engine(bus: FakeBus, delay_s: float, *, task_status=trio.TASK_STATUS_IGNORED):
    """Answer every command and query ``delay_s`` after it was added."""
    seen: set[bytes] = set()

    async def answer(fields: dict) -> None:
        await trio.sleep(delay_s)
        stream = reply_stream(fields[REPLY_TO_FIELD].decode())
        bus.streams.add(stream, {fields[REQUEST_ID_FIELD]: echo(fields)})

    async with trio.open_nursery() as nursery:
        task_status.started()
        while True:
            for name in (COMMAND_STREAM, QUERY_STREAM):
                for entry_id, fields in bus.streams.entries.get(name, []):
                    if entry_id not in seen:
                        seen.add(entry_id)
                        nursery.start_soon(answer, fields)
            await bus.streams.changed.wait()


async def test_no_reply_raises_engine_timeout_at_the_deadline(autojump_clock):
    bus = live_bus()
    async with open_gateway("redis://unused", bus=bus, timeout_s=TIMEOUT_S) as gateway:
        started = trio.current_time()
        with pytest.raises(EngineTimeout):
            await gateway.submit(COMMAND)
        assert trio.current_time() - started == TIMEOUT_S
        assert len(bus.streams.entries[COMMAND_STREAM]) == 1  # it was enqueued: outcome unknown


async def test_a_reply_just_before_the_deadline_arrives(autojump_clock):
    bus = live_bus()
    async with trio.open_nursery() as nursery:
        await nursery.start(scripted_engine, bus, TIMEOUT_S - 0.01)
        async with open_gateway("redis://unused", bus=bus, timeout_s=TIMEOUT_S) as gateway:
            started = trio.current_time()
            reply = await gateway.submit(COMMAND)
            assert trio.current_time() - started == pytest.approx(TIMEOUT_S - 0.01)
            assert reply == Rejection(ErrorCode.CONFLICT, codec.encode(COMMAND).decode())
        nursery.cancel_scope.cancel()


async def test_a_late_reply_is_dropped_and_the_next_request_works(autojump_clock):
    bus = live_bus()
    async with trio.open_nursery() as nursery:
        await nursery.start(scripted_engine, bus, TIMEOUT_S + 1)
        async with open_gateway("redis://unused", bus=bus, timeout_s=TIMEOUT_S) as gateway:
            with pytest.raises(EngineTimeout):
                await gateway.submit(COMMAND)
            await trio.sleep(2)  # the late reply comes and goes
            assert gateway._pending == {}
            gateway.timeout_s = 10.0
            started = trio.current_time()
            assert isinstance(await gateway.query(GetBalances("alice")), Rejection)
            assert trio.current_time() - started == pytest.approx(TIMEOUT_S + 1)
        nursery.cancel_scope.cancel()


async def test_without_heartbeat_requests_fail_at_once_and_are_not_enqueued(autojump_clock):
    bus = FakeBus()
    async with open_gateway("redis://unused", bus=bus, timeout_s=TIMEOUT_S) as gateway:
        assert gateway.heartbeat() is None
        started = trio.current_time()
        with pytest.raises(ServiceUnavailable):
            await gateway.submit(COMMAND)
        assert trio.current_time() == started
        assert COMMAND_STREAM not in bus.streams.entries


async def test_an_expired_heartbeat_is_noticed_at_the_next_poll(autojump_clock):
    bus = live_bus()
    async with open_gateway("redis://unused", bus=bus, timeout_s=TIMEOUT_S) as gateway:
        assert gateway.heartbeat() is not None
        await trio.sleep(0.1)
        del bus.streams.keys[HEARTBEAT_KEY]  # the engine died; its key expired
        await trio.sleep(HEARTBEAT_POLL_S)
        with pytest.raises(ServiceUnavailable):
            await gateway.submit(COMMAND)


async def test_unreachable_redis_fails_fast_and_recovers(autojump_clock):
    bus = live_bus()
    async with trio.open_nursery() as nursery:
        await nursery.start(scripted_engine, bus, 0.001)
        async with open_gateway("redis://unused", bus=bus, timeout_s=TIMEOUT_S) as gateway:
            bus.down = True
            started = trio.current_time()
            with pytest.raises(ServiceUnavailable):
                await gateway.submit(COMMAND)  # the heartbeat was fresh: the XADD fails
            assert trio.current_time() == started
            with pytest.raises(ServiceUnavailable):
                await gateway.submit(COMMAND)  # now refused before trying
            # Polls keep failing; a heartbeat older than HEARTBEAT_STALE_S is not trusted.
            await trio.sleep(HEARTBEAT_STALE_S + 1)
            assert gateway.heartbeat() is None
            bus.down = False
            await trio.sleep(HEARTBEAT_POLL_S)
            assert gateway.heartbeat() is not None
            assert isinstance(await gateway.submit(COMMAND), Rejection)
        nursery.cancel_scope.cancel()


async def test_reader_backs_off_then_resumes_where_it_stopped(autojump_clock):
    bus = live_bus()
    async with trio.open_nursery() as nursery:
        await nursery.start(scripted_engine, bus, 0.5)
        async with open_gateway("redis://unused", bus=bus, timeout_s=TIMEOUT_S) as gateway:
            async with trio.open_nursery() as requests:
                results = []

                async def one() -> None:
                    results.append(await gateway.submit(COMMAND))

                requests.start_soon(one)
                await trio.sleep(0.1)  # enqueued; its reply comes at 0.5 s, during the outage
                bus.down = True
                await trio.sleep(1.0)
                bus.down = False
            # Retries 0.05 s after the first failure, then 0.1, 0.2, 0.4 later; then it is up.
            failed = bus.failed_reads
            assert [round(b - a, 3) for a, b in zip(failed, failed[1:], strict=False)] == [
                0.05,
                0.1,
                0.2,
                0.4,
            ]
            assert len(results) == 1  # the reply written meanwhile was not lost
        nursery.cancel_scope.cancel()


async def test_submit_many_is_one_round_trip_and_keeps_order(autojump_clock):
    bus = live_bus()
    calls = 0
    pipeline = bus.pipeline

    async def counting_pipeline(build, **kw):
        nonlocal calls
        calls += 1
        return await pipeline(build, **kw)

    bus.pipeline = counting_pipeline
    commands = [Deposit("alice", "INR", n) for n in range(1, 6)]
    async with trio.open_nursery() as nursery:
        await nursery.start(scripted_engine, bus, 0.01)
        async with open_gateway("redis://unused", bus=bus, timeout_s=TIMEOUT_S) as gateway:
            replies = await gateway.submit_many(commands)
        nursery.cancel_scope.cancel()
    assert calls == 1
    assert [r.message for r in replies] == [codec.encode(c).decode() for c in commands]


async def test_replies_reach_their_own_instance(autojump_clock):
    bus = live_bus()
    async with trio.open_nursery() as nursery:
        await nursery.start(scripted_engine, bus, 0.01)
        async with (
            open_gateway("redis://unused", bus=bus, instance_id="a") as a,
            open_gateway("redis://unused", bus=bus, instance_id="b") as b,
        ):
            got: dict[str, list] = {"a": [], "b": []}

            async def client(gateway, name: str) -> None:
                for n in range(20):
                    reply = await gateway.submit(Deposit(name, "INR", n + 1))
                    got[name].append(reply.message)

            async with trio.open_nursery() as clients:
                clients.start_soon(client, a, "a")
                clients.start_soon(client, b, "b")
        nursery.cancel_scope.cancel()
    for name in ("a", "b"):
        assert got[name] == [codec.encode(Deposit(name, "INR", n + 1)).decode() for n in range(20)]
