"""``bin/engine`` killed with SIGKILL at random moments while clients keep submitting.

Several gateways submit thousands of commands (deposits, orders, cancels from the seeded flow)
while the engine process is killed and restarted a few times. Afterwards the whole command log
is fed to an in-process reference engine, and:

- every command that got a reply is in the log exactly once, and its reply is the reference's
  reply for that log entry; refused commands are not in the log; timed-out ones at most once;
- the events stream holds every event of the reference, once each, in order (outputs are
  neither lost nor repeated across crashes);
- the snapshot written at the final clean stop has the reference's state hash, and a restarted
  engine reports the reference's balances and open orders for every user.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import attrs
import pytest
import redis
import trio

from exchange import codec
from exchange.dev.flow import Flow
from exchange.engine import snapshot
from exchange.engine.snapshots_store import decode_record
from exchange.errors import EngineTimeout, ServiceUnavailable
from exchange.gateway import open_gateway
from exchange.markets import load_config
from exchange.models import GetBalances, GetOpenOrders, PlaceOrder
from exchange.names import BODY_FIELD, COMMAND_STREAM, FLUSHED_KEY, SNAPSHOT_INDEX_KEY, snapshot_key

from .helpers import read_events, read_log, reference_from_log

ENGINE = Path(__file__).resolve().parents[2] / "bin" / "engine"
CONFIG = load_config()
SEED = 20240611
USERS = 40
COMMANDS = 4_000
GATEWAYS = 4
WORKERS_PER_GATEWAY = 4
KILLS = 4
TIMEOUT_S = 2.0
LONG_OUTAGE_S = TIMEOUT_S + 0.5

pytestmark = pytest.mark.slow


class EngineProcess:
    """``bin/engine`` as a child process on the test's Redis."""

    def __init__(self, redis_url: str, log_path: Path) -> None:
        self.env = os.environ | {
            "REDIS_URL": redis_url,
            "ENGINE_SNAPSHOT_EVERY_COMMANDS": "250",
            "ENGINE_SNAPSHOTS_KEPT": "1000",  # never trim: the reference reads the whole log
            "LOG_LEVEL": "INFO",
        }
        self.log_path = log_path
        self.process: trio.Process | None = None
        self.starts = 0

    async def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = await trio.lowlevel.open_process(
                [sys.executable, str(ENGINE)], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self.starts += 1

    async def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            return await self.process.wait()

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


@attrs.define
class Results:
    replied: list[tuple[object, object]] = attrs.Factory(list)
    timed_out: list[object] = attrs.Factory(list)
    refused: list[object] = attrs.Factory(list)

    @property
    def done(self) -> int:
        return len(self.replied) + len(self.timed_out) + len(self.refused)


def unique_commands() -> tuple[list, list]:
    """Funding and trading commands, each unique by value (so the log can be matched to them):
    every order carries a unique client id, cancels name orders by client id."""
    flow = Flow(CONFIG, seed=SEED, users=USERS, client_id_share=1.0)
    commands = []
    for n, command in enumerate(flow.commands(COMMANDS)):
        if isinstance(command, PlaceOrder) and command.client_order_id is None:
            command = attrs.evolve(command, client_order_id=f"m{n}")
        commands.append(command)
    return flow.funding, commands


async def wait_until(predicate, timeout_s: float, what: str) -> None:
    with trio.fail_after(timeout_s):
        while not predicate():
            await trio.sleep(0.02)


async def test_kill_9_loses_and_repeats_nothing(redis_url, tmp_path):
    client = redis.Redis.from_url(redis_url)
    engine = EngineProcess(redis_url, tmp_path / "engine.log")
    funding, commands = unique_commands()
    rng = random.Random(SEED)
    results = Results()
    await engine.start()
    try:
        async with trio.open_nursery() as nursery:
            gateways = [
                await nursery.start(_run_gateway, redis_url, f"crash-{n}") for n in range(GATEWAYS)
            ]
            await wait_until(lambda: gateways[0].heartbeat() is not None, 20, "engine up")
            for start in range(0, len(funding), 50):
                await gateways[0].submit_many(funding[start : start + 50])

            async def worker(gateway, share: list) -> None:
                for command in share:
                    try:
                        results.replied.append((command, await gateway.submit(command)))
                    except EngineTimeout:
                        results.timed_out.append(command)
                    except ServiceUnavailable:
                        results.refused.append(command)
                        await trio.sleep(0.05)

            async def killer() -> None:
                marks = sorted(rng.uniform(0.05, 0.85) * COMMANDS for _ in range(KILLS))
                for n, mark in enumerate(marks):
                    await wait_until(lambda m=mark: results.done >= m, 60, "progress")
                    await trio.sleep(rng.uniform(0, 0.03))
                    await engine.kill()
                    # Once, stay down longer than the gateways' timeout: outcomes unknown.
                    await trio.sleep(LONG_OUTAGE_S if n == 1 else rng.uniform(0, 0.3))
                    await engine.start()

            workers = GATEWAYS * WORKERS_PER_GATEWAY
            async with trio.open_nursery() as clients:
                clients.start_soon(killer)
                for n in range(workers):
                    clients.start_soon(worker, gateways[n % GATEWAYS], commands[n::workers])
            nursery.cancel_scope.cancel()

        assert engine.starts == KILLS + 1
        last_id = client.xrevrange(COMMAND_STREAM, count=1)[0][0]
        await wait_until(lambda: client.get(FLUSHED_KEY) == last_id, 30, "log drained")
        assert await engine.stop() == 0, engine.tail()
    except BaseException:
        if engine.process is not None and engine.process.returncode is None:
            await engine.kill()
        print(engine.tail())
        raise

    print(
        f"replied {len(results.replied)}, timed out {len(results.timed_out)}, "
        f"refused {len(results.refused)}; engine starts {engine.starts}"
    )
    log = read_log(client)
    reference = reference_from_log(CONFIG, log)
    assert len(reference.outcomes) == len(log)  # nothing malformed
    positions: dict[object, list[bytes]] = defaultdict(list)
    for entry_id, fields in log:
        positions[codec.decode(fields[BODY_FIELD])].append(entry_id)
    submitted = set(funding) | set(commands)
    assert set(positions) <= submitted
    assert len(results.replied) > COMMANDS * 0.8  # most got through despite the kills
    assert results.timed_out  # the long outage left some outcomes unknown
    for command, reply in results.replied:
        [entry_id] = positions[command]  # exactly once
        assert reply == reference.outcomes[entry_id][1].reply
    for command in results.refused:
        assert command not in positions
    for command in results.timed_out:
        assert len(positions.get(command, [])) <= 1

    # Outputs: every event once, in order, though the engine died mid-stream four times.
    events = read_events(client)
    assert events == reference.events_json()
    trades = [event for event in events if event["record"] == "TradeExecuted"]
    assert [t["trade_id"] for t in trades] == list(range(1, reference.engine.next_trade_id))

    # The final clean stop left a snapshot of exactly the reference's state.
    newest = client.lrange(SNAPSHOT_INDEX_KEY, 0, 0)[0]
    assert newest == last_id
    stored = decode_record(client.get(snapshot_key(newest.decode())))
    restored = snapshot.loads(stored.blob, CONFIG)
    assert snapshot.state_hash(restored) == snapshot.state_hash(reference.engine)

    # And a restarted engine answers with the reference's balances and open orders.
    await engine.start()
    try:
        async with open_gateway(redis_url) as gateway:
            await wait_until(lambda: gateway.heartbeat() is not None, 20, "engine up")
            users = sorted({c.user_id for c in funding})
            for user in users:
                assert await gateway.query(GetBalances(user)) == reference.engine.query(
                    GetBalances(user)
                )
                assert await gateway.query(GetOpenOrders(user)) == reference.engine.query(
                    GetOpenOrders(user)
                )
    finally:
        assert await engine.stop() == 0, engine.tail()
        client.close()


async def _run_gateway(redis_url: str, instance_id: str, *, task_status) -> None:
    async with open_gateway(redis_url, instance_id=instance_id, timeout_s=TIMEOUT_S) as gateway:
        task_status.started(gateway)
        await trio.sleep_forever()
