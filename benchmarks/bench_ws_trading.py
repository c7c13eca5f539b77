"""Orders over the WebSocket against HTTP single orders, in one run: ``just bench-ws-trading``.

Starts a private stack (:func:`bench_stack.private_stack`: Redis, PostgreSQL, ``bin/engine``,
``bin/db``, ``bin/api``, ``bin/ws``; dev auth, rate limits off) and funds users 1 and 2 as
:mod:`bench_http` does. Phases, each after a warm-up:

- ``ws_c16``: 16 WebSocket connections, each in a process of its own (multiprocessing children
  running a trio-websocket client, so the load generator never shares the measured process),
  each with one ``order.place`` in flight: crossing limit orders of quantity 1 at one price,
  even connections buying as user 1, odd ones selling as user 2, so the book stays at one level;
- ``ws_c1``: one such connection (its p50 is the latency of one order with nothing else going on);
- ``ws_c16_pipelined``: the 16 connections with ``--in-flight`` (8) orders outstanding each, as
  a trader pipelining on one connection does (HTTP/1.1 cannot);
- ``http_c16``: ``POST /api/v1/order`` at c=16 with wrk (:func:`bench_http.run_phase`).

Any error answer makes a phase invalid (null figures, exit 1). It prints orders/s, p50/p99 and
the CPU each process spent per order; the last line is one JSON object: ``orders_per_s``,
``p50_ms``, ``p99_ms`` (ws, c=16), ``p50_c1_ms``, ``http_orders_per_s`` and ``vs_http``
(ws orders/s over HTTP orders/s), ``pipelined_orders_per_s`` and ``pipelined_vs_http``.
Targets (issue 17): ``vs_http`` ≥ 5, ``p50_c1_ms`` ≤ 1.0.

    python benchmarks/bench_ws_trading.py [--seconds 15] [--warmup 5] [--quick] [--connections 16] [--in-flight 8]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

import attrs
from bench_http import MARKET, PRICE, USERS, Target, fund_and_sample, run_phase, wrk_binary
from bench_stack import CpuMeter, private_stack

PROGRAMS = ("engine", "db", "api", "ws")


@attrs.frozen
class WsResult:
    name: str
    connections: int
    duration_s: float
    orders: int
    errors: int
    latencies_ms: list[float]
    cpu_s: dict[str, float]

    @property
    def valid(self) -> bool:
        return self.orders > 0 and self.errors == 0

    @property
    def rate(self) -> float:
        return self.orders / self.duration_s

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def client_process(url: str, index: int, in_flight: int, window, go, out) -> None:  # noqa: ANN001
    """One connection with ``in_flight`` orders outstanding (a new one sent as each answer
    comes). Once connected it says so on ``out``, waits for ``go`` and then places orders until
    ``window[1]`` (epoch seconds), counting those answered from ``window[0]``; puts
    ``(orders, errors, latencies_ms)`` on ``out``."""
    import orjson
    import trio
    from trio_websocket import open_websocket_url

    side, user = ("buy", USERS[0]) if index % 2 == 0 else ("sell", USERS[1])
    params = {"market": MARKET, "side": side, "price": PRICE, "quantity": "1"}

    async def run() -> tuple[int, int, list[float]]:
        orders = errors = 0
        latencies: list[float] = []
        sent_at: dict[int, tuple[float, float]] = {}  # id → (epoch, perf_counter) when sent
        async with open_websocket_url(url) as ws:
            await ws.send_message(
                orjson.dumps({"id": 0, "method": "AUTH", "params": {"user_id": user}})
            )
            await ws.get_message()
            out.put("ready")
            await trio.to_thread.run_sync(go.wait)
            start_at, stop_at = window[0], window[1]
            request_id = 0

            async def send_one() -> None:
                nonlocal request_id
                request_id += 1
                sent_at[request_id] = (time.time(), time.perf_counter())
                frame = orjson.dumps({"id": request_id, "method": "order.place", "params": params})
                await ws.send_message(frame)

            for _ in range(in_flight):
                await send_one()
            while sent_at:
                answer = orjson.loads(await ws.get_message())
                sent_epoch, started = sent_at.pop(answer.get("id"), (None, None))
                if sent_epoch is None:
                    errors += 1
                    break
                if sent_epoch >= start_at:
                    orders += 1
                    latencies.append(1000 * (time.perf_counter() - started))
                    if "result" not in answer:
                        errors += 1
                if time.time() < stop_at:
                    await send_one()
        return orders, errors, latencies

    out.put(trio.run(run))


def run_ws_phase(
    name: str,
    url: str,
    connections: int,
    args: argparse.Namespace,
    meter: CpuMeter,
    *,
    in_flight: int = 1,
) -> WsResult:
    print(f"{name}: {connections} connection(s), {args.warmup} s warm-up, {args.seconds} s",
          file=sys.stderr)  # fmt: skip
    context = multiprocessing.get_context("spawn")
    out, go, window = context.Queue(), context.Event(), context.Array("d", 2)
    children = [
        context.Process(target=client_process, args=(url, index, in_flight, window, go, out))
        for index in range(connections)
    ]
    for child in children:
        child.start()
    for _ in children:  # every connection open and authenticated before the clock starts
        assert out.get(timeout=120) == "ready"
    start_at = time.time() + args.warmup
    stop_at = start_at + args.seconds
    window[0], window[1] = start_at, stop_at
    go.set()
    time.sleep(max(0.0, start_at - time.time()))
    before = meter.sample()
    time.sleep(max(0.0, stop_at - time.time()))
    after = meter.sample()
    reports = [out.get(timeout=60) for _ in children]
    for child in children:
        child.join()
    return WsResult(
        name=name,
        connections=connections,
        duration_s=args.seconds,
        orders=sum(r[0] for r in reports),
        errors=sum(r[1] for r in reports) + sum(1 for c in children if c.exitcode != 0),
        latencies_ms=[ms for r in reports for ms in r[2]],
        cpu_s=CpuMeter.used(before, after),
    )


def describe(result: WsResult) -> str:
    if not result.valid:
        return f"{result.name}: INVALID ({result.errors} errors, {result.orders} orders)"
    cpu = ", ".join(
        f"{name} {1000 * used / result.orders:.3f}" for name, used in result.cpu_s.items()
    )
    return (
        f"{result.name}: {result.rate:,.0f} orders/s, p50 {result.percentile(0.5):.3f} ms, "
        f"p99 {result.percentile(0.99):.3f} ms; CPU ms per order: {cpu}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15, help="measured seconds per phase")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up seconds before each phase")
    parser.add_argument("--quick", action="store_true", help="a short check: 3 s, 1 s warm-up")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--in-flight",
        type=int,
        default=8,
        help="orders outstanding per connection, pipelined phase",
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.warmup = 3, 1
    wrk = wrk_binary()
    with (
        tempfile.TemporaryDirectory(prefix="bench-ws-trading-") as tmp,
        private_stack(Path(tmp), PROGRAMS) as stack,
    ):
        fund_and_sample(stack)
        ws_url = f"ws://127.0.0.1:{stack.env['WS_PORT']}/"
        meter = CpuMeter(stack.pids)
        many = run_ws_phase("ws_c16", ws_url, args.connections, args, meter)
        print(describe(many), flush=True)
        one = run_ws_phase("ws_c1", ws_url, 1, args, meter)
        print(describe(one), flush=True)
        piped = run_ws_phase(
            "ws_c16_pipelined", ws_url, args.connections, args, meter, in_flight=args.in_flight
        )
        print(describe(piped), flush=True)
        http = run_phase("http_c16", wrk, Target(stack.url, "order"), 16, args, meter)
        print(
            f"http_c16: {http.rps:,.0f} orders/s, p50 {http.latency_ms.get('p50', 0):.3f} ms"
            + ("" if http.valid else f" INVALID {http.errors}"),
            flush=True,
        )
    valid = many.valid and one.valid and piped.valid and http.valid
    figures = {
        "orders_per_s": round(many.rate) if many.valid else None,
        "p50_ms": round(many.percentile(0.5), 3) if many.valid else None,
        "p99_ms": round(many.percentile(0.99), 3) if many.valid else None,
        "p50_c1_ms": round(one.percentile(0.5), 3) if one.valid else None,
        "http_orders_per_s": round(http.rps) if http.valid else None,
        "vs_http": round(many.rate / http.rps, 2) if valid else None,
        "pipelined_orders_per_s": round(piped.rate) if piped.valid else None,
        "pipelined_vs_http": round(piped.rate / http.rps, 2) if valid else None,
        "in_flight": args.in_flight,
        "connections": args.connections,
        "seconds": args.seconds,
        "mean_c16_ms": round(statistics.fmean(many.latencies_ms), 3) if many.valid else None,
        "valid": valid,
    }
    print(json.dumps(figures))
    return 0 if valid else 1


if __name__ == "__main__":
    sys.exit(main())
