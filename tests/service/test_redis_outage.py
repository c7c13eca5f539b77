"""Redis stops and comes back under a running engine and gateway: nothing lost, nothing doubled."""

from __future__ import annotations

import pytest
import redis
import trio

from exchange.dev.localservers import RedisServer
from exchange.engine import program as engine_program
from exchange.errors import EngineTimeout, ServiceUnavailable
from exchange.gateway import open_gateway
from exchange.markets import load_config
from exchange.models import Deposit, GetBalances
from exchange.names import FLUSHED_KEY
from exchange.settings import Settings

from .helpers import read_events, read_log, reference_from_log

CONFIG = load_config()

pytestmark = pytest.mark.slow


@pytest.fixture
def own_redis(tmp_path):
    """A Redis of this test's own, which it may stop and restart."""
    with RedisServer.start(tmp_path / "redis", appendfsync="always") as server:
        yield server


async def test_engine_and_gateway_ride_out_a_redis_restart(own_redis):
    settings = Settings(redis_url=own_redis.url)
    replied: list[tuple[Deposit, object]] = []
    failed: list[Deposit] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(engine_program.run, settings)
        async with open_gateway(own_redis.url, timeout_s=2.0) as gateway:

            async def client(name: str) -> None:
                for n in range(1, 200):
                    command = Deposit(name, "INR", n)
                    try:
                        replied.append((command, await gateway.submit(command)))
                    except (ServiceUnavailable, EngineTimeout):
                        failed.append(command)
                        await trio.sleep(0.05)
                    await trio.sleep(0.005)

            async with trio.open_nursery() as clients:
                for name in ("a", "b", "c"):
                    clients.start_soon(client, name)
                await trio.sleep(0.3)
                await trio.to_thread.run_sync(own_redis.stop)
                await trio.sleep(1.0)  # engine and gateway back off meanwhile
                await trio.to_thread.run_sync(own_redis.restart)
            assert failed, "the outage was noticed"
            assert len(replied) > 300, "and both recovered"
            with trio.fail_after(10):
                while gateway.heartbeat() is None:
                    await trio.sleep(0.05)
            balances = {name: await gateway.query(GetBalances(name)) for name in "abc"}
        nursery.cancel_scope.cancel()

    client = redis.Redis.from_url(own_redis.url)
    log = read_log(client)
    assert client.get(FLUSHED_KEY) == log[-1][0]
    reference = reference_from_log(CONFIG, log)
    in_log = [command for command, _outcome, _seq in reference.outcomes.values()]
    assert len(in_log) == len(set(in_log))  # nothing applied twice
    for command, reply in replied:
        assert command in in_log
        assert reply.balances["INR"].available > 0
    for name in "abc":
        assert balances[name] == reference.engine.query(GetBalances(name))
    assert read_events(client) == reference.events_json()
    client.close()
