"""WebSocket benchmark clients: many connections in one process, on a plain ``epoll`` loop.

    python benchmarks/ws_clients.py --port P --clients N [--probe] [--nap-ms T] --stream S …

Run by :mod:`bench_ws` as several child processes: the bulk of the clients in "counting"
processes and a few latency probes in a process of their own. On one machine the benchmark's
clients compete with the server for the cores, so they must be cheap, and the probes must not
wait behind them. A trio client costs a task wake-up per received chunk; at 1,000 clients that
alone saturated a core and the probes' receive timestamps lagged by tens of milliseconds. Here a
ready socket costs one ``recv``, and counting processes nap ``--nap-ms`` between polls so each
``recv`` takes several fan-out rounds at once (their lag is not measured; probes never nap).

Protocol with the parent, one line each way: the worker connects and subscribes every client,
prints ``ready``; the parent writes ``start`` (count from now) and later ``stop``; the worker
prints one JSON object (frames counted, probe latencies, drops, close codes) and exits.

Counting clients count data frames with ``bytes.count(b'{"stream":')`` (a JSON string cannot
hold that sequence unescaped). Probes (``--probe``) parse every frame and time each trade and depth
event twice: its engine-to-client latency is its ws receipt minus the moment a plain Redis
subscriber in the same loop saw it published on the market channel, and its log-to-client
latency is its ws receipt minus the event's ``timestamp``, the millisecond its command entered
the engine's log (that adds the engine's input queue and batching). Probes answer pings;
counters ignore them (a run is shorter than the server's ping interval plus its pong timeout).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import select
import socket
import sys
import time

import orjson
import redis

MARKER = b'{"stream":'
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA
LATENCY_TYPES = ("trade", "depth")


def masked_frame(payload: bytes, opcode: int) -> bytes:
    """A client frame (clients must mask; RFC 6455 §5.3)."""
    key = secrets.token_bytes(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    size = len(payload)
    if size < 126:
        header = bytes((0x80 | opcode, 0x80 | size))
    else:
        header = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    return header + key + masked


def connect(port: int, streams: list[str]) -> tuple[socket.socket, bytes]:
    """Open a WebSocket, subscribe to ``streams``; returns the socket and bytes read past the
    handshake."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    sock.sendall(
        (
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("handshake refused")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.decode(errors="replace"))
    request = {"method": "SUBSCRIBE", "params": streams, "id": 1}
    sock.sendall(masked_frame(orjson.dumps(request), TEXT))
    sock.setblocking(False)
    return sock, rest


class Counter:
    """Counts data frames without parsing them."""

    def __init__(self, sock: socket.socket, rest: bytes) -> None:
        self.sock = sock
        self.tail = rest

    def feed(self, chunk: bytes, now_ms: float, tally: Tally) -> None:
        data = self.tail + chunk
        if tally.measuring:
            tally.frames += data.count(MARKER)
        self.tail = data[-(len(MARKER) - 1) :]  # a marker split across chunks is counted once


class Probe:
    """Parses every frame: latencies, pings answered, close codes."""

    def __init__(self, sock: socket.socket, rest: bytes) -> None:
        self.sock = sock
        self.buffer = bytearray(rest)

    def feed(self, chunk: bytes, now_ms: float, tally: Tally) -> None:
        buffer = self.buffer
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
            if opcode == TEXT and tally.measuring:
                data = orjson.loads(payload).get("data")
                if data is not None:
                    tally.frames += 1
                    key = event_key(data)
                    if key is not None:
                        tally.ws_seen.append((key, now_ms))
                        tally.log_to_client_ms.append(now_ms - data["timestamp"])
            elif opcode == PING:
                self.sock.sendall(masked_frame(payload, PONG))
            elif opcode == CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                tally.close_codes[code] = tally.close_codes.get(code, 0) + 1
        del buffer[:offset]


def event_key(data: dict) -> tuple[str, int] | None:
    """What names a trade or depth event both in a ws frame and on the engine's channel."""
    kind = data.get("type")
    if kind == "trade":
        return kind, data["id"]
    if kind == "depth":
        return kind, data["last_update_id"]
    return None


def bus_event_key(event: dict) -> tuple[str, int] | None:
    """:func:`event_key` of an event as the engine publishes it (``codec.event_message``)."""
    kind = event.get("record")
    if kind == "TradeExecuted":
        return "trade", event["trade_id"]
    if kind == "DepthChanged":
        return "depth", event["last_update_id"]
    return None


class BusListener:
    """A plain Redis subscriber to the market's channel, in the probes' loop and clock: when it
    sees an event is when the engine published it (plus one Redis hop)."""

    def __init__(self, redis_url: str, channel: str) -> None:
        self.pubsub = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(channel)
        self.sock = self.pubsub.connection._sock

    def drain(self, now_ms: float, tally: Tally) -> None:
        while (message := self.pubsub.get_message(timeout=0.0)) is not None:
            for event in orjson.loads(message["data"]):
                key = bus_event_key(event)
                if key is not None:
                    tally.bus_seen.setdefault(key, now_ms)
                    if tally.measuring:
                        tally.log_to_bus_ms.append(now_ms - event["timestamp"])


class Tally:
    def __init__(self) -> None:
        self.measuring = False
        self.frames = 0
        self.ws_seen: list[tuple[tuple[str, int], float]] = []  # (event, received), measuring
        self.bus_seen: dict[tuple[str, int], float] = {}  # event → first seen on the channel
        self.log_to_client_ms: list[float] = []  # ws receipt - the command's log time
        self.log_to_bus_ms: list[float] = []  # channel receipt - the command's log time
        self.dropped = 0
        self.close_codes: dict[int, int] = {}
        self.cpu_s = 0.0  # CPU time between start and stop


def serve(
    clients: dict[int, Counter | Probe], tally: Tally, nap_s: float, bus: BusListener | None
) -> None:
    """Receive on every client until the parent says ``stop``."""
    poller = select.epoll()
    control = sys.stdin.fileno()
    poller.register(control, select.EPOLLIN)
    for fd in clients:
        poller.register(fd, select.EPOLLIN)
    if bus is not None:
        poller.register(bus.sock.fileno(), select.EPOLLIN)
    while True:
        for fd, _events in poller.poll():
            if bus is not None and fd == bus.sock.fileno():
                bus.drain(time.time() * 1000, tally)
                continue
            if fd == control:
                command = sys.stdin.readline().strip()
                if command == "start":
                    tally.measuring = True
                    tally.cpu_s = -time.process_time()
                    continue
                tally.cpu_s += time.process_time()
                return  # "stop", or the parent went away
            client = clients[fd]
            try:
                chunk = client.sock.recv(262_144)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                tally.dropped += 1
                poller.unregister(fd)
                del clients[fd]
                continue
            client.feed(chunk, time.time() * 1000, tally)
        if nap_s:
            time.sleep(nap_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--probe", action="store_true", help="parse every frame, never nap")
    parser.add_argument("--redis-url", help="probes: the engine's Redis, to time its channel")
    parser.add_argument("--channel", help="probes: the market channel to time")
    parser.add_argument("--nap-ms", type=float, default=10.0, help="counting clients' nap")
    parser.add_argument("--stream", action="append", required=True)
    args = parser.parse_args(argv)

    clients: dict[int, Counter | Probe] = {}
    for _ in range(args.clients):
        sock, rest = connect(args.port, args.stream)
        clients[sock.fileno()] = (Probe if args.probe else Counter)(sock, rest)
    print("ready", flush=True)
    bus = BusListener(args.redis_url, args.channel) if args.probe and args.redis_url else None
    tally = Tally()
    serve(clients, tally, 0.0 if args.probe else args.nap_ms / 1000, bus)
    if bus is not None:
        bus.drain(time.time() * 1000, tally)  # frames may have beaten their channel message
    result = {
        "frames": tally.frames,
        "engine_to_client_ms": [
            seen - tally.bus_seen[key] for key, seen in tally.ws_seen if key in tally.bus_seen
        ],
        "log_to_client_ms": tally.log_to_client_ms,
        "log_to_bus_ms": tally.log_to_bus_ms,
        "dropped": tally.dropped,
        "close_codes": tally.close_codes,
        "cpu_s": tally.cpu_s,
        "pid": os.getpid(),
    }
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
