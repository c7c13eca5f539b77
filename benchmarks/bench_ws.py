"""WebSocket fan-out benchmark: many clients on ``trade@M`` and ``depth@M`` under a steady flow.

    python benchmarks/bench_ws.py [--clients 1000] [--trades-per-s 200] [--seconds 15]

Starts its own Redis (private, throwaway), ``bin/engine`` and ``bin/ws`` as child processes,
connects the clients from this process, then drives the seeded order flow of
:mod:`exchange.testing.flow` through the gateway at the command rate that yields the requested
trades per second. It prints messages delivered per second (data frames, all clients), the
engine-to-client latency of trade and depth frames (client receive time minus the event's
``timestamp``, which is the millisecond the command entered the log; whole milliseconds, so
figures carry up to 1 ms of rounding), clients dropped (1008) and the ws process's CPU use.
The last line is one JSON object.

The clients are deliberately cheap, since they share the machine with the server: raw sockets
with a hand-made handshake; most count data frames with ``bytes.count(b'{"stream":')`` (a JSON
string cannot contain that sequence unescaped); ``--probes`` clients parse every frame for the
latency figures. Everything runs on one machine, so clients, engine, Redis and the flow driver
compete with the ws process for the same cores.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from exchange.gateway import open_gateway  # noqa: E402
from exchange.localservers import RedisServer, free_port  # noqa: E402
from exchange.markets import load_config  # noqa: E402
from exchange.testing.flow import Flow  # noqa: E402

MARKET = "TATA_INR"
TICK_S = 0.01
MARKER = b'{"stream":'
CONNECT_PARALLEL = 50


class Tally:
    def __init__(self) -> None:
        self.frames = 0
        self.latencies_ms: list[float] = []
        self.measuring = False
        self.dropped = 0
        self.close_codes: dict[int, int] = {}


def _mask(payload: bytes, opcode: int) -> bytes:
    key = secrets.token_bytes(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    size = len(payload)
    header = bytes((0x80 | opcode, 0x80 | size)) if size < 126 else None
    if header is None:
        header = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    return header + key + masked


async def _open(port: int, streams: list[str]) -> tuple[trio.SocketStream, bytes]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    await stream.send_all(
        (
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise ConnectionError("handshake refused")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.decode(errors="replace"))
    request = {"method": "SUBSCRIBE", "params": streams, "id": 1}
    await stream.send_all(_mask(orjson.dumps(request), 0x1))
    return stream, rest


async def counting_client(stream: trio.SocketStream, rest: bytes, tally: Tally) -> None:
    """Counts data frames without parsing them."""
    tail = rest
    while True:
        try:
            chunk = await stream.receive_some(262_144)
        except trio.BrokenResourceError:
            chunk = b""
        if not chunk:
            tally.dropped += 1
            return
        data = tail + chunk
        if tally.measuring:
            tally.frames += data.count(MARKER)
        tail = data[-(len(MARKER) - 1) :]  # a marker split across chunks is counted once


async def probe_client(stream: trio.SocketStream, rest: bytes, tally: Tally) -> None:
    """Parses every frame: latency of trade/depth frames, pings answered, close codes."""
    buffer = bytearray(rest)
    while True:
        try:
            chunk = await stream.receive_some(262_144)
        except trio.BrokenResourceError:
            chunk = b""
        if not chunk:
            tally.dropped += 1
            return
        now_ms = time.time() * 1000
        buffer += chunk
        offset = 0
        while len(buffer) - offset >= 2:
            opcode = buffer[offset] & 0x0F
            size = buffer[offset + 1] & 0x7F
            header = 2
            if size == 126:
                if len(buffer) - offset < 4:
                    break
                size = int.from_bytes(buffer[offset + 2 : offset + 4], "big")
                header = 4
            elif size == 127:
                if len(buffer) - offset < 10:
                    break
                size = int.from_bytes(buffer[offset + 2 : offset + 10], "big")
                header = 10
            if len(buffer) - offset < header + size:
                break
            payload = bytes(buffer[offset + header : offset + header + size])
            offset += header + size
            if opcode == 0x1 and tally.measuring:
                message = orjson.loads(payload)
                data = message.get("data")
                if data is not None:
                    tally.frames += 1
                    if data["type"] in ("trade", "depth"):
                        tally.latencies_ms.append(now_ms - data["timestamp"])
            elif opcode == 0x9:
                await stream.send_all(_mask(payload, 0xA))
            elif opcode == 0x8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                tally.close_codes[code] = tally.close_codes.get(code, 0) + 1
        del buffer[:offset]


async def bus_probe(redis_url: str, tally: Tally, into: list[float]) -> None:
    """Latency at a direct Redis subscriber: what the engine and Redis alone add."""
    from exchange.bus import market_channel, open_subscriber

    async with open_subscriber(redis_url) as subscriber:
        await subscriber.subscribe(market_channel(MARKET))
        async for _channel, data in subscriber:
            now_ms = time.time() * 1000
            if tally.measuring:
                into.extend(now_ms - event["timestamp"] for event in orjson.loads(data))


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _spawn(program: str, env: dict[str, str], log_dir: Path) -> subprocess.Popen:
    log = (log_dir / f"{program}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, str(ROOT / "bin" / program)], env=env, stdout=log, stderr=subprocess.STDOUT
    )


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def bench(
    args: argparse.Namespace, redis_url: str, ws_port: int, ws_pid: int, engine_pid: int
) -> dict:
    config = load_config()
    flow = Flow(config, seed=42, users=200, markets=[MARKET])
    # Commands per trade of this flow, measured on a sample the driver will then send.
    sample = flow.commands(4000)
    trades_per_command = flow.trades / len(sample)
    commands_per_s = args.trades_per_s / trades_per_command
    needed = int(commands_per_s * (args.seconds + args.warmup + 2))
    commands = sample + flow.commands(max(0, needed - len(sample)))
    tally = Tally()
    streams = [f"trade@{MARKET}", f"depth@{MARKET}"]
    async with open_gateway(redis_url) as gateway, trio.open_nursery() as nursery:
        with trio.fail_after(30):
            while gateway.heartbeat() is None:
                await trio.sleep(0.05)
        await gateway.submit_many(flow.funding)
        bus_latencies: list[float] = []
        nursery.start_soon(bus_probe, redis_url, tally, bus_latencies)
        limiter = trio.CapacityLimiter(CONNECT_PARALLEL)

        async def start_client(index: int) -> None:
            async with limiter:
                stream, rest = await _open(ws_port, streams)
            probe = index % max(1, args.clients // args.probes) == 0
            await (probe_client if probe else counting_client)(stream, rest, tally)

        started = time.monotonic()
        for index in range(args.clients):
            nursery.start_soon(start_client, index)
        connect_s = time.monotonic() - started
        print(f"connecting {args.clients} clients …", flush=True)
        await trio.sleep(2.0)  # handshakes and snapshots settle
        print(
            f"driving {commands_per_s:.0f} commands/s (~{args.trades_per_s} trades/s) "
            f"for {args.warmup + args.seconds:.0f}s",
            flush=True,
        )
        sent = 0
        begin = trio.current_time()
        measure_at = begin + args.warmup
        end = measure_at + args.seconds
        cpu0 = wall0 = None
        while trio.current_time() < end:
            now = trio.current_time()
            if cpu0 is None and now >= measure_at:
                tally.measuring = True
                cpu0, wall0 = _cpu_s(ws_pid), time.monotonic()
                engine_cpu0, own_cpu0 = _cpu_s(engine_pid), time.process_time()
            due = min(len(commands), int((now - begin) * commands_per_s))
            if due > sent:
                await gateway.submit_many(commands[sent:due])
                sent = due
            await trio.sleep(TICK_S)
        tally.measuring = False
        wall = time.monotonic() - wall0
        ws_cpu = (_cpu_s(ws_pid) - cpu0) / wall
        engine_cpu = (_cpu_s(engine_pid) - engine_cpu0) / wall
        own_cpu = (time.process_time() - own_cpu0) / wall
        nursery.cancel_scope.cancel()
    return {
        "clients": args.clients,
        "trades_per_s_target": args.trades_per_s,
        "commands_per_s": round(commands_per_s, 1),
        "seconds": round(wall, 2),
        "messages_per_s": round(tally.frames / wall),
        "p50_ms": round(percentile(tally.latencies_ms, 0.50), 2),
        "p99_ms": round(percentile(tally.latencies_ms, 0.99), 2),
        "latency_samples": len(tally.latencies_ms),
        "bus_p50_ms": round(percentile(bus_latencies, 0.50), 2),
        "bus_p99_ms": round(percentile(bus_latencies, 0.99), 2),
        "clients_dropped": tally.dropped,
        "close_codes": tally.close_codes,
        "ws_cpu_share": round(ws_cpu, 2),
        "engine_cpu_share": round(engine_cpu, 2),
        "clients_cpu_share": round(own_cpu, 2),
        "connect_s": round(connect_s, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--trades-per-s", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--probes", type=int, default=50, help="clients that parse every frame")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-ws-") as tmp:
        tmp_path = Path(tmp)
        with RedisServer.start(tmp_path / "redis") as redis_server:
            ws_port = free_port()
            env = {
                **os.environ,
                "REDIS_URL": redis_server.url,
                "WS_PORT": str(ws_port),
                "EXCHANGE_AUTH": "dev",
                "PYTHONPATH": str(ROOT),
                # No history to seed tickers from: name a port nothing listens on, so the ws
                # server starts unseeded at once instead of trying the machine's PostgreSQL.
                "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/none",
            }
            engine = _spawn("engine", env, tmp_path)
            ws = _spawn("ws", env, tmp_path)
            try:
                deadline = time.monotonic() + 30
                while True:  # wait for the ws port
                    try:
                        import socket

                        socket.create_connection(("127.0.0.1", ws_port), timeout=0.2).close()
                        break
                    except OSError:
                        if time.monotonic() > deadline or ws.poll() is not None:
                            raise SystemExit((tmp_path / "ws.log").read_text()) from None
                        time.sleep(0.1)
                result = trio.run(bench, args, redis_server.url, ws_port, ws.pid, engine.pid)
            finally:
                for process in (ws, engine):
                    process.terminate()
                for process in (ws, engine):
                    try:
                        process.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        process.kill()
            result["ws_exit_code"] = ws.returncode
    print(
        f"{result['messages_per_s']:,} messages/s to {result['clients']} clients; "
        f"latency p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms; "
        f"dropped {result['clients_dropped']}; ws CPU {result['ws_cpu_share']:.0%}"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
