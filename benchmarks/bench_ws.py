"""WebSocket fan-out benchmark: many clients on ``trade@M`` and ``depth@M`` under a steady flow.

    python benchmarks/bench_ws.py [--clients 1000] [--trades-per-s 200] [--seconds 15]
                                  [--client-procs 2] [--probes 50] [--nap-ms 10]
                                  [--no-pin-server] [--ws-workers 1] [--public-write]

Starts its own Redis (private, throwaway), ``bin/engine`` and ``bin/ws`` as child processes,
connects the clients from ``--client-procs`` processes (:mod:`ws_clients`, plain ``epoll``
loops), then drives the seeded order flow of :mod:`exchange.dev.flow` through the gateway at
the command rate that yields the requested trades per second. It prints messages delivered per
second (data frames, all clients), the engine-to-client latency of trade and depth frames (ws
receipt minus the moment a plain Redis subscriber beside the probes saw the engine publish the
event: ``p50_ms``, ``p99_ms``), the latency from the command's entry in the log (the event's
``timestamp``, whole milliseconds) to the client and to that subscriber (what the engine's
input queue and batching add), clients dropped (1008) and the CPU share of the ws process, the
engine and the clients. The last line is one JSON object.

Everything runs on one machine, so clients, engine, Redis and the flow driver compete with the ws
process for the same cores; the clients are kept cheap for that reason (see :mod:`ws_clients`),
and by default the ws process gets one core to itself (``--no-pin-server`` to share them all:
then the figures mostly measure how long a saturated scheduler keeps the server off a core).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_stack import tree_cpu_s  # noqa: E402

from exchange.dev.flow import Flow  # noqa: E402
from exchange.dev.localservers import RedisServer, free_port  # noqa: E402
from exchange.gateway import open_gateway  # noqa: E402
from exchange.markets import load_config  # noqa: E402
from exchange.names import market_channel  # noqa: E402

MARKET = "TATA_INR"
TICK_S = 0.01
MARKER = b'{"stream":'


def _start_clients(
    args: argparse.Namespace, ws_port: int, redis_url: str, streams: list[str]
) -> list:
    """Spawn the client processes (:mod:`ws_clients`): the probes in one of their own, the
    other clients spread evenly over ``--client-procs`` counting processes."""
    script = [sys.executable, str(ROOT / "benchmarks" / "ws_clients.py"), "--port", str(ws_port)]
    script += [arg for stream in streams for arg in ("--stream", stream)]
    counting = args.clients - args.probes
    commands = [
        script
        + ["--clients", str(args.probes), "--probe"]
        + ["--redis-url", redis_url, "--channel", market_channel(MARKET)]
    ]
    for index in range(args.client_procs):
        share = counting // args.client_procs + (index < counting % args.client_procs)
        commands.append(script + ["--clients", str(share), "--nap-ms", str(args.nap_ms)])
    return [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for command in commands
    ]


def _tell(processes: list, line: str) -> None:
    for process in processes:
        process.stdin.write(line + "\n")
        process.stdin.flush()


def _spawn(
    program: str, env: dict[str, str], log_dir: Path, cpus: set[int] | None = None
) -> subprocess.Popen:
    log = (log_dir / f"{program}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, str(ROOT / "bin" / program)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        # Before exec, so every thread the program starts inherits it.
        preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
    )


def _split_cpus(pin: bool, workers: int) -> tuple[set[int] | None, set[int] | None]:
    """``(server's CPUs, everyone else's)`` for ``--pin-server``, else ``(None, None)``.

    Real clients run on other machines; here they share the cores with the server. Pinned, the
    ws processes get a core per worker (leaving at least one) and the clients, engine, Redis and
    driver the others, so the figure is the server's, not the scheduler's: unpinned, each time
    a ws process waits for a core (the machine is saturated) its fan-out round stalls for a time
    slice.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return None, None
    server = min(workers, len(cpus) - 1)
    return set(cpus[-server:]), set(cpus[:-server])


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
    streams = [f"trade@{MARKET}", f"depth@{MARKET}"]
    measuring = False
    async with open_gateway(redis_url) as gateway:
        with trio.fail_after(30):
            while gateway.heartbeat() is None:
                await trio.sleep(0.05)
        await gateway.submit_many(flow.funding)

        print(f"connecting {args.clients} clients from {args.client_procs} processes …", flush=True)
        started = time.monotonic()
        clients = _start_clients(args, ws_port, redis_url, streams)
        for process in clients:
            if await trio.to_thread.run_sync(process.stdout.readline) != "ready\n":
                raise SystemExit("a client process failed to connect")
        connect_s = time.monotonic() - started
        await trio.sleep(1.0)  # snapshots settle
        print(
            f"driving {commands_per_s:.0f} commands/s (~{args.trades_per_s} trades/s) "
            f"for {args.warmup + args.seconds:.0f}s",
            flush=True,
        )
        sent = 0
        begin = trio.current_time()
        measure_at = begin + args.warmup
        end = measure_at + args.seconds
        while trio.current_time() < end:
            now = trio.current_time()
            if not measuring and now >= measure_at:
                _tell(clients, "start")
                measuring = True
                cpu0, wall0 = tree_cpu_s(ws_pid), time.monotonic()
                engine_cpu0 = tree_cpu_s(engine_pid)
            due = min(len(commands), int((now - begin) * commands_per_s))
            if due > sent:
                await gateway.submit_many(commands[sent:due])
                sent = due
            await trio.sleep(TICK_S)
        _tell(clients, "stop")
        wall = time.monotonic() - wall0
        ws_cpu = (tree_cpu_s(ws_pid) - cpu0) / wall
        engine_cpu = (tree_cpu_s(engine_pid) - engine_cpu0) / wall
        reports = [json.loads(await trio.to_thread.run_sync(p.stdout.read)) for p in clients]

    def gathered(name: str) -> list[float]:
        return [ms for report in reports for ms in report.get(name, ())]

    latencies = gathered("engine_to_client_ms")
    log_latencies = gathered("log_to_client_ms")
    bus_latencies = gathered("log_to_bus_ms")
    close_codes: dict[str, int] = {}
    for report in reports:
        for code, count in report["close_codes"].items():
            close_codes[code] = close_codes.get(code, 0) + count
    return {
        "clients": args.clients,
        "trades_per_s_target": args.trades_per_s,
        "commands_per_s": round(commands_per_s, 1),
        "seconds": round(wall, 2),
        "messages_per_s": round(sum(report["frames"] for report in reports) / wall),
        "p50_ms": round(percentile(latencies, 0.50), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "latency_samples": len(latencies),
        "log_to_client_p50_ms": round(percentile(log_latencies, 0.50), 2),
        "log_to_client_p99_ms": round(percentile(log_latencies, 0.99), 2),
        "log_to_bus_p50_ms": round(percentile(bus_latencies, 0.50), 2),
        "log_to_bus_p99_ms": round(percentile(bus_latencies, 0.99), 2),
        "clients_dropped": sum(report["dropped"] for report in reports),
        "close_codes": close_codes,
        "ws_cpu_share": round(ws_cpu, 2),
        "engine_cpu_share": round(engine_cpu, 2),
        "clients_cpu_share": round(sum(report["cpu_s"] for report in reports) / wall, 2),
        "client_processes": args.client_procs + 1,
        "connect_s": round(connect_s, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--trades-per-s", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--probes", type=int, default=50, help="clients that parse every frame")
    parser.add_argument("--client-procs", type=int, default=2, help="counting client processes")
    parser.add_argument("--nap-ms", type=float, default=10.0, help="counting clients' poll nap")
    parser.add_argument("--ws-workers", type=int, default=1, help="ws processes (WS_WORKERS)")
    parser.add_argument(
        "--pin-server",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="give the ws process a CPU of its own (the rest share the others)",
    )
    parser.add_argument(
        "--public-write",
        action="store_true",
        help="write through trio-websocket's send_message (WS_WRITE=public), not directly",
    )
    args = parser.parse_args(argv)
    server_cpus, other_cpus = _split_cpus(args.pin_server, args.ws_workers)
    if other_cpus is not None:
        os.sched_setaffinity(0, other_cpus)  # inherited by Redis, the engine and the clients
    with tempfile.TemporaryDirectory(prefix="bench-ws-") as tmp:
        tmp_path = Path(tmp)
        with RedisServer.start(tmp_path / "redis") as redis_server:
            ws_port = free_port()
            env = {
                **os.environ,
                "REDIS_URL": redis_server.url,
                "WS_PORT": str(ws_port),
                "WS_WORKERS": str(args.ws_workers),
                # --public-write: through trio-websocket's send_message, against the direct path
                "WS_WRITE": "public" if args.public_write else "direct",
                "EXCHANGE_AUTH": "dev",
                "PYTHONPATH": str(ROOT),
                # No history to seed tickers from: name a port nothing listens on, so the ws
                # server starts unseeded at once instead of trying the machine's PostgreSQL.
                "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/none",
            }
            engine = _spawn("engine", env, tmp_path)
            ws = _spawn("ws", env, tmp_path, server_cpus)
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
            result["server_pinned"] = server_cpus is not None
            result["ws_workers"] = args.ws_workers
            result["ws_write"] = "public" if args.public_write else "direct"
    print(
        f"{result['messages_per_s']:,} messages/s to {result['clients']} clients; "
        f"engine-to-client p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms "
        f"(from the command's log entry: p50 {result['log_to_client_p50_ms']} ms, "
        f"p99 {result['log_to_client_p99_ms']} ms); "
        f"dropped {result['clients_dropped']}; ws CPU {result['ws_cpu_share']:.0%}"
        f"{' (a core of its own)' if result['server_pinned'] else ''}"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
