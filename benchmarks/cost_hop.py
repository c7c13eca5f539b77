"""CPU cost of the thread bridge: one redis-py call directly, and through ``trio.to_thread``.

Every Redis call of every program is a blocking redis-py call in a worker thread (the design
card's thread-bridged client, :class:`exchange.bus.RedisBridge`); this prints what the hop adds
to a call, per call, as this process's CPU and as wall time, against a private ``redis-server``:
a direct ``PING``, ``PING`` through the bridge, a no-op through ``trio.to_thread``, and a trio
checkpoint for scale. Usage: ``python benchmarks/cost_hop.py [--calls 20000]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from exchange.bus import RedisBridge
from exchange.dev.localservers import RedisServer


async def measure(name: str, calls: int, op: Callable[[], Awaitable[object]]) -> None:
    await op()  # warm: connection made, thread cached
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(calls):
        await op()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"{name:32} CPU {cpu / calls * 1e6:6.1f} µs/call, wall {wall / calls * 1e6:6.1f} µs/call")


async def main(calls: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, RedisServer.start(Path(tmp)) as server:
        client = server.client()
        bus = RedisBridge(server.url)

        async def direct_ping() -> None:
            client.ping()

        await measure("redis-py ping(), direct", calls, direct_ping)
        await measure("ping() through the bridge", calls, bus.ping)
        await measure("trio.to_thread.run_sync(int)", calls, lambda: trio.to_thread.run_sync(int))
        await measure("trio checkpoint", calls, trio.lowlevel.checkpoint)
        bus.close()
        client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    trio.run(main, parser.parse_args().calls)
