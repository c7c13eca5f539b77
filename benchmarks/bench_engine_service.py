"""Benchmark the engine service end to end: producers → Redis → bin/engine → replies.

Starts its own Redis (``exchange.dev.localservers.RedisServer``, AOF ``everysec``, in a temp dir) and
``bin/engine`` as a child process, then measures two phases with the seeded order flow
(``exchange.dev.flow``: passive and crossing limit orders, market orders, cancels):

- **light load**: one client sends one command at a time → reply latency p50/p99;
- **saturation**: several producer processes, each with many concurrent clients on one gateway,
  push the bulk of the commands → commands/s from the first XADD to the last reply, and the
  reply latency p50/p99 under that load.

Latency is measured around ``Gateway.submit_raw`` (commands are encoded before the clock starts
and replies are not decoded: the producers share the machine with the engine and Redis, and
their own CPU is not what is being measured). Each producer funds its own users first (not
timed), so orders rarely fail for want of funds. The last line printed is one JSON object with
``commands_per_s`` (saturation), ``p50_ms`` and ``p99_ms`` (light load), and more.

It also reports the CPU seconds the engine, the producers and Redis spent during the saturation
phase, and ``commands_per_engine_cpu_s``: on a shared or small machine the wall-clock rate says
how much CPU the benchmark got, while the engine's rate per CPU second is its ceiling on one core.

    python benchmarks/bench_engine_service.py [--commands 200000] [--producers 2] [--clients 128]
"""

from __future__ import annotations

import argparse
import array
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import attrs
import redis
import trio
from bench_stack import process_cpu_s, process_cpu_split_s

from exchange import codec
from exchange.dev.flow import Flow
from exchange.dev.localservers import RedisServer
from exchange.gateway import open_gateway
from exchange.markets import load_config
from exchange.names import COMMAND_STREAM, EVENT_STREAM, FLUSHED_KEY, HEARTBEAT_KEY

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "bin" / "engine"
USERS_PER_PRODUCER = 300
FUNDING_CHUNK = 50
WARMUP_COMMANDS = 300


# --- a producer (a child process) ----------------------------------------------------------------


def make_commands(seed: int, prefix: str, count: int) -> tuple[list[bytes], list[bytes]]:
    """Funding and ``count`` trading commands of the flow, for users named ``prefix…``, encoded.
    Orders carry client ids and cancels use them, so each producer's flow stays consistent on
    its own users whatever the others do."""
    flow = Flow(load_config(), seed=seed, users=USERS_PER_PRODUCER, client_id_share=1.0)

    def own(command):
        return attrs.evolve(command, user_id=prefix + command.user_id)

    funding = [codec.encode(own(c)) for c in flow.funding]
    commands = [codec.encode(own(c)) for c in flow.commands(count)]
    return funding, commands


async def produce(args: argparse.Namespace) -> None:
    funding, commands = make_commands(args.seed, f"p{args.producer}.", args.count)
    latencies = array.array("d")
    async with open_gateway(args.redis_url, timeout_s=120.0) as gateway:
        for start in range(0, len(funding), FUNDING_CHUNK):
            await gateway.submit_many(
                [codec.decode(b) for b in funding[start : start + FUNDING_CHUNK]]
            )
        print("ready", flush=True)
        await trio.to_thread.run_sync(sys.stdin.readline)  # "go"
        first = time.monotonic()
        cpu = time.process_time()

        async def client(share: list[bytes]) -> None:
            clock = time.perf_counter
            for body in share:
                started = clock()
                await gateway.submit_raw(body)
                latencies.append(clock() - started)

        async with trio.open_nursery() as nursery:
            for n in range(args.clients):
                nursery.start_soon(client, commands[n :: args.clients])
        last = time.monotonic()
        cpu = time.process_time() - cpu
    path = Path(args.out)
    path.write_bytes(latencies.tobytes())
    report = {"first": first, "last": last, "count": len(latencies), "cpu_s": cpu}
    print(json.dumps(report), flush=True)


# --- the conductor -------------------------------------------------------------------------------


def start_producer(args, redis_url: str, k: int, count: int, clients: int, out: Path):
    command = [
        sys.executable, __file__, "--producer", str(k), "--redis-url", redis_url,
        "--count", str(count), "--clients", str(clients), "--seed", str(args.seed + k),
        "--out", str(out),
    ]  # fmt: skip
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def run_phase(args, server, engine_pid: int, name: str, producers: int, count: int, clients: int):
    """Start producers, wait until all are funded, release them together, collect results."""
    tmp = Path(args.tmp)
    procs = []
    for k in range(producers):
        index = len(list(tmp.iterdir()))
        out = tmp / f"{name}-{k}.lat"
        out.touch()
        procs.append((start_producer(args, server.url, index, count, clients, out), out))
    for proc, _ in procs:
        line = proc.stdout.readline().strip()
        if line != "ready":
            raise SystemExit(f"producer failed to start: {line!r}")
    client = server.client()
    engine_cpu, redis_cpu = process_cpu_s(engine_pid), redis_cpu_s(client)
    engine_split = process_cpu_split_s(engine_pid)
    batches = events_entries_added(client)
    for proc, _ in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    reports = []
    latencies = array.array("d")
    for proc, out in procs:
        reports.append(json.loads(proc.stdout.readline()))
        if proc.wait() != 0:
            raise SystemExit(f"producer exited with {proc.returncode}")
        latencies.frombytes(out.read_bytes())
    engine_cpu = process_cpu_s(engine_pid) - engine_cpu
    user_after, sys_after = process_cpu_split_s(engine_pid)
    engine_user, engine_sys = user_after - engine_split[0], sys_after - engine_split[1]
    redis_cpu = redis_cpu_s(client) - redis_cpu
    batches = events_entries_added(client) - batches
    client.close()
    first = min(r["first"] for r in reports)
    last = max(r["last"] for r in reports)
    return Phase(
        count=sum(r["count"] for r in reports),
        elapsed_s=last - first,
        latencies=latencies,
        batches=batches,
        cpu_s={
            "engine": round(engine_cpu, 2),
            "engine_user": round(engine_user, 2),
            "engine_system": round(engine_sys, 2),
            "producers": round(sum(r["cpu_s"] for r in reports), 2),
            "redis": round(redis_cpu, 2),
        },
    )


@attrs.frozen
class Phase:
    count: int
    elapsed_s: float
    latencies: array.array
    batches: int  # engine batches that wrote events (one events-stream entry each)
    cpu_s: dict[str, float]

    def p(self, q: float) -> float:
        """The ``q`` quantile of the latencies, in ms."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def events_entries_added(client) -> int:
    """Entries ever added to the events stream: one per engine batch with events."""
    try:
        return client.xinfo_stream(EVENT_STREAM)["entries-added"]
    except redis.ResponseError:  # no such stream yet
        return 0


def redis_cpu_s(client) -> float:
    info = client.info("cpu")
    return info["used_cpu_user"] + info["used_cpu_sys"]


def conduct(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-engine-service-") as tmpdir:
        tmp = Path(tmpdir)
        args.tmp = str(tmp / "lat")
        (tmp / "lat").mkdir()
        with RedisServer.start(tmp / "redis") as server, open(tmp / "engine.log", "wb") as log:
            env = os.environ | {
                "REDIS_URL": server.url,
                "ENGINE_EVENTS_MAXLEN": "20000",  # no db writer here to consume them
                "LOG_LEVEL": args.engine_log_level,
            }
            engine = subprocess.Popen(
                [sys.executable, str(ENGINE)], env=env, stdout=log, stderr=subprocess.STDOUT
            )
            client = server.client()
            try:
                deadline = time.monotonic() + 30
                while client.get(HEARTBEAT_KEY) is None:
                    if time.monotonic() > deadline or engine.poll() is not None:
                        raise SystemExit("the engine did not start")
                    time.sleep(0.05)

                print(f"light load: 1 client, {args.light} commands, one at a time")
                light = run_phase(
                    args, server, engine.pid, "light", 1, args.light + WARMUP_COMMANDS, 1
                )
                light.latencies[:WARMUP_COMMANDS] = array.array("d")
                print(f"  p50 {light.p(0.5):.3f} ms  p99 {light.p(0.99):.3f} ms")

                per_producer = -(-args.commands // args.producers)
                print(
                    f"saturation: {args.producers} producers × {args.clients} clients, "
                    f"{per_producer * args.producers} commands"
                )
                heavy = run_phase(
                    args, server, engine.pid, "heavy", args.producers, per_producer, args.clients
                )
                rate = heavy.count / heavy.elapsed_s
                print(
                    f"  {heavy.count} commands in {heavy.elapsed_s:.2f} s: {rate:,.0f} commands/s"
                )
                print(f"  p50 {heavy.p(0.5):.3f} ms  p99 {heavy.p(0.99):.3f} ms")
                print(f"  CPU seconds: {heavy.cpu_s}")
                batch_mean = heavy.count / max(1, heavy.batches)
                print(f"  engine batches {heavy.batches} (mean {batch_mean:.0f} commands)")
                last_id = client.xrevrange(COMMAND_STREAM, count=1)[0][0]
                assert client.get(FLUSHED_KEY) == last_id, "the engine has not flushed everything"
                heartbeat = json.loads(client.get(HEARTBEAT_KEY))
                print(f"  engine seq {heartbeat['seq']}, log length {client.xlen(COMMAND_STREAM)}")
            finally:
                engine.terminate()
                code = engine.wait(60)
                client.close()
            if args.show_engine_log or code != 0:
                print((tmp / "engine.log").read_text()[-4000:])
            return {
                "commands_per_s": round(rate),
                "p50_ms": round(light.p(0.5), 3),
                "p99_ms": round(light.p(0.99), 3),
                "saturation_p50_ms": round(heavy.p(0.5), 3),
                "saturation_p99_ms": round(heavy.p(0.99), 3),
                "commands": heavy.count,
                "producers": args.producers,
                "clients_per_producer": args.clients,
                "commands_per_engine_cpu_s": round(heavy.count / heavy.cpu_s["engine"]),
                "cpu_s": heavy.cpu_s,
                "engine_batches": heavy.batches,
                "engine_batch_mean": round(batch_mean, 1),
                "engine_exit_code": code,
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200_000)
    parser.add_argument("--producers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=128, help="concurrent clients per producer")
    parser.add_argument("--light", type=int, default=3_000, help="commands at light load")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--engine-log-level", default="WARNING")
    parser.add_argument("--show-engine-log", action="store_true")
    # producer mode (internal)
    parser.add_argument("--producer", type=int)
    parser.add_argument("--redis-url")
    parser.add_argument("--count", type=int)
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.producer is not None:
        trio.run(produce, args)
        return
    result = conduct(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
