"""The engine shell's timers and retries, on trio's MockClock with a scripted command log.

Each test runs in virtual time: the snapshot timer, the idle heartbeat and the reconnect
back-off are checked at exact instants, without real sleeping.
"""

from __future__ import annotations

import pytest
import trio

from exchange import codec
from exchange.engine import snapshot
from exchange.engine.service import HEARTBEAT_INTERVAL_S, EngineService
from exchange.errors import ErrorCode
from exchange.markets import load_config
from exchange.models import Deposit, GetBalances, Rejection
from exchange.names import BODY_FIELD, REPLY_TO_FIELD, REQUEST_ID_FIELD

from .fakes import FakeLog, FakeSnapshots

CONFIG = load_config()
DEADLINE_S = 3600.0  # virtual: a stuck test fails instead of hanging


def make_service(log: FakeLog, snaps: FakeSnapshots, **kw) -> EngineService:
    kw.setdefault("snapshot_every_commands", 1_000_000)
    kw.setdefault("snapshot_every_s", 60.0)
    return EngineService(CONFIG, log, snaps, **kw)


async def start(nursery: trio.Nursery, service: EngineService) -> None:
    await service.recover()
    await nursery.start(lambda task_status: service.serve(task_status=task_status))


async def wait_for(predicate, timeout_s: float = DEADLINE_S) -> None:
    with trio.fail_after(timeout_s):
        while not predicate():
            await trio.sleep(0.01)


def deposit(n: int) -> Deposit:
    return Deposit(f"user{n % 7}", "INR", 100 + n)


async def test_snapshot_timer_fires_t_seconds_after_a_change(autojump_clock):
    log, snaps = FakeLog(), FakeSnapshots()
    service = make_service(log, snaps, snapshot_every_s=60.0)
    async with trio.open_nursery() as nursery:
        await start(nursery, service)
        await trio.sleep(600)  # idle and unchanged: never a snapshot
        assert snaps.saved == []
        changed_at = trio.current_time()
        log.add_command(deposit(1))
        await wait_for(lambda: snaps.saved)
        # One read period (50 ms) of slack: the timer is checked between batches.
        assert 60.0 <= snaps.saved_at[0] - changed_at <= 60.05
        assert snaps.saved[0].seq == 1
        await trio.sleep(600)
        assert len(snaps.saved) == 1  # nothing changed since
        nursery.cancel_scope.cancel()


async def test_snapshot_every_n_commands(autojump_clock):
    log, snaps = FakeLog(), FakeSnapshots()
    service = make_service(log, snaps, batch_size=50, snapshot_every_commands=100)
    ids = [log.add_command(deposit(n), request_id=b"%d" % n) for n in range(250)]
    async with trio.open_nursery() as nursery:
        await start(nursery, service)
        await wait_for(lambda: len(log.replies()) == 250)
        assert [s.log_id for s in snaps.saved] == [ids[99], ids[199]]
        assert [s.seq for s in snaps.saved] == [100, 200]
        restored = snapshot.loads(snaps.saved[-1].blob, CONFIG)
        assert restored.seq == 200
        nursery.cancel_scope.cancel()
    # Shutdown snapshots the remaining 50.
    assert snaps.saved[-1].log_id == ids[-1]


async def test_idle_heartbeat_every_second(autojump_clock):
    log, snaps = FakeLog(), FakeSnapshots()
    service = make_service(log, snaps)
    async with trio.open_nursery() as nursery:
        await start(nursery, service)
        started = trio.current_time()
        await trio.sleep(10.01)
        nursery.cancel_scope.cancel()
    beats = [out for out in log.flushed if out.heartbeat is not None]
    # The first beat is written before serving; then one per second (± one read period).
    assert 10 <= len(beats) <= 12
    assert all(not out.replies and not out.events for out in beats)
    assert HEARTBEAT_INTERVAL_S == 1.0 and trio.current_time() - started >= 10


async def test_reconnect_back_off_is_exact(autojump_clock):
    log, snaps = FakeLog(), FakeSnapshots()
    service = make_service(log, snaps)
    async with trio.open_nursery() as nursery:
        await start(nursery, service)
        log.read_times.clear()
        log.fail_reads = 8
        outage_start = trio.current_time()
        await wait_for(lambda: len(log.read_times) >= 10)
        nursery.cancel_scope.cancel()
    # 8 failures then a success: waits of 0.05 doubling, capped at 2 s.
    gaps = [round(b - a, 6) for a, b in zip(log.read_times, log.read_times[1:], strict=False)]
    assert gaps[:8] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    # A success resets the back-off: the next read follows at once.
    assert log.read_times[0] == pytest.approx(outage_start, abs=0.05)


async def test_commands_survive_an_outage_exactly_once(autojump_clock):
    log, snaps = FakeLog(), FakeSnapshots()
    service = make_service(log, snaps)
    async with trio.open_nursery() as nursery:
        await start(nursery, service)
        log.fail_reads = 3
        for n in range(5):
            log.add_command(deposit(n), request_id=b"%d" % n)
        # The flush lands in Redis but its answer is lost: the retry must not write it again.
        log.fail_flushes = 1
        log.flush_lands_before_failing = True
        await wait_for(lambda: len(log.replies()) == 5)
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert log.fail_flushes == 0  # the lost answer did happen
    with_commands = [out for out in log.flushed if out.last_command_id is not None]
    assert len(with_commands) == 1
    assert service.engine.seq == 5
    assert sum(len(out.events) for out in with_commands) == 2 * 5  # a transfer and a balance each


async def test_flush_retried_until_it_lands(autojump_clock):
    log, snaps = FakeLog(), FakeSnapshots()
    service = make_service(log, snaps)
    async with trio.open_nursery() as nursery:
        await start(nursery, service)
        log.fail_flushes = 4  # fails before landing, four times
        sent_at = trio.current_time()
        log.add_command(deposit(1))
        await wait_for(lambda: log.replies())
        # Back-off 0.05 + 0.1 + 0.2 + 0.4 after the batch was read.
        assert trio.current_time() - sent_at == pytest.approx(0.75, abs=0.06)
        nursery.cancel_scope.cancel()
    assert service.engine.seq == 1


async def test_malformed_entries_are_rejected_and_take_no_seq(autojump_clock):
    log, snaps = FakeLog(), FakeSnapshots()
    service = make_service(log, snaps)
    log.add_raw({BODY_FIELD: b"{not json", REPLY_TO_FIELD: b"test", REQUEST_ID_FIELD: b"bad1"})
    log.add_raw({BODY_FIELD: codec.encode(GetBalances("x")), REPLY_TO_FIELD: b"test",
                 REQUEST_ID_FIELD: b"bad2"})  # fmt: skip
    log.add_raw({REPLY_TO_FIELD: b"test", REQUEST_ID_FIELD: b"bad3"})  # no body at all
    log.add_raw({BODY_FIELD: b"[]"})  # nobody to answer
    log.add_command(deposit(1), request_id=b"good")
    async with trio.open_nursery() as nursery:
        await start(nursery, service)
        await wait_for(lambda: b"good" in log.replies())
        nursery.cancel_scope.cancel()
    replies = log.replies()
    for request_id in (b"bad1", b"bad2", b"bad3"):
        rejection = codec.decode(replies[request_id])
        assert isinstance(rejection, Rejection)
        assert rejection.code is ErrorCode.INVALID_REQUEST
    assert service.engine.seq == 1
    events = [event for out in log.flushed for event in out.events]
    assert [event["seq"] for event in events] == [1, 1]  # the deposit's transfer and balance


async def test_shutdown_flushes_the_applied_batch_and_snapshots(autojump_clock):
    log, snaps = FakeLog(), FakeSnapshots()
    service = make_service(log, snaps)
    async with trio.open_nursery() as nursery:
        await start(nursery, service)
        log.fail_flushes = 2  # the batch is applied, its flush is retrying when we stop
        last = log.add_command(deposit(1))
        await wait_for(lambda: service.engine.seq == 1)
        nursery.cancel_scope.cancel()
    assert log.flushed_mark == last
    assert [s.log_id for s in snaps.saved] == [last]


async def test_recovery_replays_silently_up_to_the_flushed_mark(autojump_clock):
    log, snaps = FakeLog(), FakeSnapshots()
    first = make_service(log, snaps)
    ids = [log.add_command(deposit(n), request_id=b"%d" % n) for n in range(10)]
    await first.recover()
    # Apply everything, flush only the first batch of 4: then "crash".
    out = first.process(log.streams.after("commands", b"0-0", 4), [])
    await log.flush(out)
    first.process(log.streams.after("commands", ids[3]), [])
    assert log.flushed_mark == ids[3]
    second = make_service(log, snaps)
    async with trio.open_nursery() as nursery:
        await start(nursery, second)
        await wait_for(lambda: second.engine.seq == 10 and len(log.replies()) == 10)
        nursery.cancel_scope.cancel()
    seqs = [event["seq"] for out in log.flushed for event in out.events]
    # each command's events (a transfer and a balance) once, in order
    assert seqs == [seq for seq in range(1, 11) for _ in range(2)]
    assert snapshot.state_hash(second.engine) == snapshot.state_hash(first.engine)
