"""The engine service on real Redis: round trips, outputs, restarts, snapshots and trimming."""

from __future__ import annotations

import orjson
import pytest
import redis
import trio

from exchange import codec
from exchange.bus import RedisBridge
from exchange.dev.flow import Flow
from exchange.engine import program as engine_program
from exchange.engine.redis_log import RedisLog
from exchange.engine.service import EngineService, UnrecoverableLog
from exchange.engine.snapshot import loads, state_hash
from exchange.engine.snapshots_store import SnapshotStore, decode_record
from exchange.errors import ErrorCode
from exchange.gateway import open_gateway
from exchange.markets import load_config
from exchange.models import (
    Balance,
    CancelOrder,
    Deposit,
    Depth,
    DepthChanged,
    GetBalances,
    GetDepth,
    GetOpenOrders,
    GetOrder,
    OrderStatus,
    OrderView,
    PlaceOrder,
    Rejection,
    Side,
    TradeExecuted,
)
from exchange.names import (
    BODY_FIELD,
    COMMAND_STREAM,
    FLUSHED_KEY,
    REPLY_TO_FIELD,
    REQUEST_ID_FIELD,
    SNAPSHOT_INDEX_KEY,
    id_ms,
    market_channel,
    parse_id,
    reply_stream,
    snapshot_key,
    user_channel,
)
from exchange.pubsub import open_subscriber
from exchange.settings import Settings

from .helpers import push_commands, read_events, read_log, reference_from_log

CONFIG = load_config()


@pytest.fixture
def client(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


async def test_round_trip_through_the_gateway(engine_service):
    async with open_gateway(engine_service.redis_url) as gateway:
        heartbeat = gateway.heartbeat()
        assert heartbeat is not None and set(heartbeat) == {"seq", "log_id", "lag", "ts"}
        deposited = await gateway.submit(Deposit("alice", "INR", 10**9))
        assert deposited.balances["INR"] == Balance(10**9, 0)
        await gateway.submit(Deposit("bob", "TATA", 10**6))
        bid = await gateway.submit(
            PlaceOrder("alice", "TATA_INR", Side.BUY, price=10_000, quantity=100)
        )
        assert isinstance(bid, OrderView) and bid.status is OrderStatus.NEW
        sell, cancel = await gateway.submit_many(
            [
                PlaceOrder("bob", "TATA_INR", Side.SELL, price=9_000, quantity=30),
                CancelOrder("alice", "TATA_INR", order_id=bid.order_id),
            ]
        )
        assert sell.status is OrderStatus.FILLED and sell.fills[0].price == 10_000
        assert cancel.status is OrderStatus.CANCELLED and cancel.executed_quantity == 30
        assert await gateway.query(GetOpenOrders("alice")) == []
        order = await gateway.query(GetOrder("alice", order_id=bid.order_id))
        assert order.status is OrderStatus.CANCELLED
        depth = await gateway.query(GetDepth("TATA_INR"))
        assert isinstance(depth, Depth) and depth.bids == () and depth.last_update_id == 3
        refused = await gateway.submit(Deposit("alice", "NOPE", 1))
        assert refused.code is ErrorCode.INVALID_ASSET
        balances = await gateway.query(GetBalances("bob"))
        assert balances["TATA"] == Balance(10**6 - 30, 0)  # 30 lots of 0.01


async def test_several_gateways_get_their_own_replies(engine_service):
    async with (
        open_gateway(engine_service.redis_url) as a,
        open_gateway(engine_service.redis_url) as b,
    ):
        results: dict[str, list] = {}

        async def client(gateway, user: str) -> None:
            results[user] = [await gateway.submit(Deposit(user, "INR", n)) for n in range(1, 31)]

        async with trio.open_nursery() as nursery:
            for n in range(4):
                nursery.start_soon(client, a if n % 2 else b, f"u{n}")
        for user, replies in results.items():
            assert [r.balances["INR"].available for r in replies] == [
                n * (n + 1) // 2 for n in range(1, 31)
            ], user


async def test_batch_outputs_reach_the_events_stream_and_channels(engine_service, client):
    async with (
        open_gateway(engine_service.redis_url) as gateway,
        open_subscriber(engine_service.redis_url) as subscriber,
    ):
        await subscriber.subscribe(
            market_channel("TATA_INR"), user_channel("alice"), user_channel("bob")
        )
        await gateway.submit_many([Deposit("alice", "INR", 10**9), Deposit("bob", "TATA", 10**6)])
        await gateway.submit(PlaceOrder("alice", "TATA_INR", Side.BUY, price=10_000, quantity=50))
        await gateway.submit(PlaceOrder("bob", "TATA_INR", Side.SELL, price=10_000, quantity=50))
        received: dict[str, list] = {}
        market = received.setdefault(market_channel("TATA_INR"), [])
        with trio.fail_after(5):
            while len(market) < 3 or user_channel("bob") not in received:
                channel, data = await subscriber.receive()
                received.setdefault(channel, []).extend(orjson.loads(data))
    # the codec's integer records: price 10_000 ticks, not "100"
    assert [e["record"] for e in market] == ["DepthChanged", "TradeExecuted", "DepthChanged"]
    assert market[1]["price"] == 10_000 and market[1]["seq"] == 4
    alice = received[user_channel("alice")]
    assert {e["record"] for e in alice} == {"OrderUpdated", "BalanceChanged", "FundsTransferred"}
    assert all(e.get("user_id", e.get("order", {}).get("user_id")) == "alice" for e in alice)
    assert [type(e) for e in codec.decode_events(orjson.dumps(market))] == [
        DepthChanged,
        TradeExecuted,
        DepthChanged,
    ]
    events = read_events(client)
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    reference = reference_from_log(CONFIG, read_log(client))
    assert events == reference.events_json()


async def test_malformed_command_is_answered_and_skipped(engine_service, client):
    client.xadd(
        COMMAND_STREAM, {BODY_FIELD: b"garbage", REPLY_TO_FIELD: b"me", REQUEST_ID_FIELD: b"r1"}
    )
    async with open_gateway(engine_service.redis_url) as gateway:
        deposited = await gateway.submit(Deposit("alice", "INR", 5))
        assert deposited.balances["INR"].available == 5
        assert gateway.heartbeat() is not None
    [(_id, fields)] = client.xrange(reply_stream("me"))
    rejection = codec.decode(fields[b"r1"])
    assert isinstance(rejection, Rejection) and rejection.code is ErrorCode.INVALID_REQUEST


def make_service(redis_url: str, bus: RedisBridge, **kw) -> EngineService:
    kw.setdefault("snapshot_every_commands", 400)
    return EngineService(
        CONFIG, RedisLog(bus), SnapshotStore(bus, kept=kw.pop("kept", 3)), batch_size=100, **kw
    )


async def drain(service: EngineService, last_id: bytes) -> None:
    """Step the service until it has applied ``last_id``."""
    with trio.fail_after(30):
        while service.last_id != last_id:
            await service.step()


async def test_snapshot_and_replay_give_the_state_of_no_restart(redis_url, client):
    flow = Flow(CONFIG, seed=3, users=30)
    ids = push_commands(client, flow.funding + flow.commands(1500))
    async with RedisBridge(redis_url) as bus:
        first = make_service(redis_url, bus, kept=10)  # no trimming: the reference reads it all
        await first.recover()
        await drain(first, ids[-1])
        # No shutdown snapshot: the last one is ~100 commands behind, the rest is replayed.
        snapshots = client.lrange(SNAPSHOT_INDEX_KEY, 0, -1)
        assert len(snapshots) >= 3 and snapshots[0] != ids[-1]
        events_before = client.xlen("exchange:events")

        second = make_service(redis_url, bus, kept=10)
        await second.recover()
        assert second.last_id == ids[-1]
        assert state_hash(second.engine) == state_hash(first.engine)
        assert client.xlen("exchange:events") == events_before  # replayed silently

        reference = reference_from_log(CONFIG, read_log(client))
        assert state_hash(reference.engine) == state_hash(first.engine)

        # And it carries on from there exactly as an engine that never stopped.
        more = push_commands(client, flow.commands(300))
        await drain(second, more[-1])
        reference = reference_from_log(CONFIG, read_log(client))
        assert state_hash(second.engine) == state_hash(reference.engine)
        assert read_events(client) == reference.events_json()


async def test_a_crash_between_apply_and_flush_outputs_each_command_once(redis_url, client):
    flow = Flow(CONFIG, seed=4, users=10)
    ids = push_commands(client, flow.funding + flow.commands(250))
    async with RedisBridge(redis_url) as bus:
        first = make_service(redis_url, bus)
        await first.recover()
        await first.step()  # the first batch of 100, flushed
        commands, queries = await first.log.read(first.last_id, first.query_id, 100)
        first.process(commands, queries)  # applied, never flushed: the engine dies here
        assert client.get(FLUSHED_KEY) == ids[99]

        second = make_service(redis_url, bus)
        await second.recover()
        assert second.last_id == ids[99]  # silent replay stops at the flushed mark
        await drain(second, ids[-1])
    reference = reference_from_log(CONFIG, read_log(client))
    assert read_events(client) == reference.events_json()
    assert state_hash(second.engine) == state_hash(reference.engine)


async def test_trimming_keeps_what_the_oldest_snapshot_needs(redis_url, client):
    flow = Flow(CONFIG, seed=5, users=10)
    ids = push_commands(client, flow.funding + flow.commands(3000))
    async with RedisBridge(redis_url) as bus:
        first = make_service(redis_url, bus, snapshot_every_commands=200, kept=2)
        await first.recover()
        await drain(first, ids[-1])
        kept = client.lrange(SNAPSHOT_INDEX_KEY, 0, -1)
        assert len(kept) == 2
        assert len(client.keys(snapshot_key("*"))) == 2
        first_left = client.xrange(COMMAND_STREAM, count=1)[0][0]
        assert parse_id(ids[0]) < parse_id(first_left) <= parse_id(kept[-1])
        assert client.xlen(COMMAND_STREAM) < len(ids)

        # The newest snapshot is damaged: recovery falls back to the older one and replays.
        client.set(snapshot_key(kept[0].decode()), b"not a snapshot")
        second = make_service(redis_url, bus, snapshot_every_commands=200, kept=2)
        await second.recover()
        assert state_hash(second.engine) == state_hash(first.engine)


async def test_a_trimmed_log_without_snapshot_is_refused(redis_url, client):
    push_commands(client, [Deposit("a", "INR", n) for n in range(1, 200)])
    client.xtrim(COMMAND_STREAM, maxlen=10)
    async with RedisBridge(redis_url) as bus:
        with pytest.raises(UnrecoverableLog):
            await make_service(redis_url, bus).recover()


async def test_clean_shutdown_takes_a_snapshot(redis_url, client):
    ids = push_commands(client, [Deposit("a", "INR", n) for n in range(1, 50)])
    settings = Settings(redis_url=redis_url)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine_program.run, settings)
        with trio.fail_after(10):
            while client.get(FLUSHED_KEY) != ids[-1]:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert client.lrange(SNAPSHOT_INDEX_KEY, 0, -1) == [ids[-1]]


async def test_background_snapshots_are_exact_states_of_the_log(redis_url, client):
    """Snapshots serialised by a forked child while the engine keeps matching: each one is the
    state after exactly the commands up to its log id, never torn by later batches."""
    flow = Flow(CONFIG, seed=6, users=40)
    ids = push_commands(client, flow.funding + flow.commands(3000))
    async with RedisBridge(redis_url) as bus:
        service = make_service(
            redis_url, bus, snapshot_every_commands=250, kept=100, background_snapshots=True
        )
        await service.recover()
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: service.serve(task_status=task_status))
            with trio.fail_after(30):
                while client.get(FLUSHED_KEY) != ids[-1]:
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    saved = client.lrange(SNAPSHOT_INDEX_KEY, 0, -1)
    assert len(saved) >= 5
    assert saved == sorted(saved, key=parse_id, reverse=True)
    assert saved[0] == ids[-1]  # the shutdown snapshot
    expected = {}
    engine = reference_from_log(CONFIG, []).engine
    for seq, (entry_id, fields) in enumerate(read_log(client), 1):
        engine.apply(codec.decode(fields[BODY_FIELD]), seq=seq, ts=id_ms(entry_id))
        if entry_id in saved:
            expected[entry_id] = state_hash(engine)
    for log_id in saved:
        stored = decode_record(client.get(snapshot_key(log_id.decode())))
        assert stored.log_id == log_id
        assert state_hash(loads(stored.blob, CONFIG)) == expected[log_id]
