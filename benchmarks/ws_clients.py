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
hold that sequence unescaped). Probes (``--probe``) parse every frame: the latency of a trade or depth
frame is its receive time minus the event's ``timestamp``, the millisecond its command entered
the engine's log. Probes answer pings; counters ignore them (a run is shorter than the server's
ping interval plus its pong timeout).
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
                    if data["type"] in LATENCY_TYPES:
                        tally.latencies_ms.append(now_ms - data["timestamp"])
            elif opcode == PING:
                self.sock.sendall(masked_frame(payload, PONG))
            elif opcode == CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                tally.close_codes[code] = tally.close_codes.get(code, 0) + 1
        del buffer[:offset]


class Tally:
    def __init__(self) -> None:
        self.measuring = False
        self.frames = 0
        self.latencies_ms: list[float] = []
        self.dropped = 0
        self.close_codes: dict[int, int] = {}
        self.cpu_s = 0.0  # CPU time between start and stop


def serve(clients: dict[int, Counter | Probe], tally: Tally, nap_s: float) -> None:
    """Receive on every client until the parent says ``stop``."""
    poller = select.epoll()
    control = sys.stdin.fileno()
    poller.register(control, select.EPOLLIN)
    for fd in clients:
        poller.register(fd, select.EPOLLIN)
    while True:
        for fd, _events in poller.poll():
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
    parser.add_argument("--nap-ms", type=float, default=10.0, help="counting clients' nap")
    parser.add_argument("--stream", action="append", required=True)
    args = parser.parse_args(argv)

    clients: dict[int, Counter | Probe] = {}
    for _ in range(args.clients):
        sock, rest = connect(args.port, args.stream)
        clients[sock.fileno()] = (Probe if args.probe else Counter)(sock, rest)
    print("ready", flush=True)
    tally = Tally()
    serve(clients, tally, 0.0 if args.probe else args.nap_ms / 1000)
    result = {
        "frames": tally.frames,
        "latencies_ms": tally.latencies_ms,
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
