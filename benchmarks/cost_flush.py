"""CPU cost per command of the engine's batch flush (``RedisLog.flush``), both sides.

Flushes the outputs of a seeded flow, in batches of 1, 16 and 256 commands, to a private
``redis-server``; prints the CPU of this process (the engine's side: packing, the thread hop,
parsing) and of the server (``INFO cpu``) per command. CPU, not wall time: robust on a busy
machine. Usage: ``python benchmarks/cost_flush.py``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import trio

from exchange.bus import RedisBridge
from exchange.dev.flow import START_TS_MS, Flow
from exchange.dev.localservers import RedisServer
from exchange.engine.core import Engine
from exchange.engine.outputs import BatchOutput
from exchange.engine.redis_log import RedisLog
from exchange.markets import load_config
from exchange.models import Outcome
from exchange.names import REPLY_TO_FIELD, REQUEST_ID_FIELD

COMMANDS_PER_SIZE = 3_000


def outcomes(commands: int) -> list[tuple[int, Outcome]]:
    config = load_config()
    flow = Flow(config, seed=3, users=200, markets=sorted(config.markets)[:3])
    engine = Engine(config)
    done = []
    for seq, command in enumerate(flow.funding + flow.commands(commands), start=1):
        outcome = engine.apply(command, seq=seq, ts=START_TS_MS + seq)
        if seq > len(flow.funding):
            done.append((seq, outcome))
    return done


def batches(applied: list[tuple[int, Outcome]], size: int) -> list[BatchOutput]:
    """Batches as the service fills them, replies for two API instances."""
    out = []
    for start in range(0, len(applied), size):
        batch = BatchOutput()
        for i, (seq, outcome) in enumerate(applied[start : start + size]):
            fields = {REPLY_TO_FIELD: b"api%d" % (i % 2), REQUEST_ID_FIELD: b"r%d" % (start + i)}
            batch.add(fields, seq, outcome)
        batch.last_command_id = b"%d-0" % (START_TS_MS + start)
        batch.newest_ms = START_TS_MS + start
        batch.heartbeat = {"seq": seq, "log_id": "0-1", "lag": 0, "ts": START_TS_MS}
        out.append(batch)
    return out


async def main() -> None:
    applied = outcomes(COMMANDS_PER_SIZE)
    with tempfile.TemporaryDirectory() as tmp, RedisServer.start(Path(tmp)) as server:
        client = server.client()
        bus = RedisBridge(server.url)
        log = RedisLog(bus, events_maxlen=100_000)

        def server_cpu_s() -> float:
            info = client.info("cpu")
            return info["used_cpu_user"] + info["used_cpu_sys"]

        for size in (1, 16, 256):
            outputs = batches(applied, size)
            await log.flush(outputs[0])  # warm: connection made, script cached
            ours, theirs = time.process_time(), server_cpu_s()
            for output in outputs:
                await log.flush(output)
            ours, theirs = time.process_time() - ours, server_cpu_s() - theirs
            n = len(applied)
            print(
                f"batch {size:3}: engine {ours / n * 1e6:6.1f} µs/command, "
                f"redis {theirs / n * 1e6:6.1f} µs/command"
            )
        bus.close()
        client.close()


if __name__ == "__main__":
    trio.run(main)
