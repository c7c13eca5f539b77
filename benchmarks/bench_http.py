"""An order's whole path against the HTTP framework alone: ``just bench-http``.

Starts a private stack (:func:`bench_stack.private_stack`: Redis, PostgreSQL, ``bin/engine``,
``bin/db``, ``bin/api`` with ``--api-workers`` processes and ``bin/ws``; dev auth), funds users 1
and 2, and beside it the bare Quart-Trio app of :mod:`bare_http_app` on hypercorn with the same
configuration and worker count, answering replies of the sizes the exchange just gave. Load
comes from ``wrk`` (``apt-get install wrk``) with ``benchmarks/bench_http.lua``: crossing limit
orders of quantity 1 at one price, users 1 and 2 alternating, or GETs of the depth. Phases, each
after a warm-up at the same concurrency:

- the bare POST at c=16 and c=64;
- POST /api/v1/order at c=1, c=16 and c=64;
- the bare GET, then GET /api/v1/depth, at c=16.

During each phase it reads from ``/proc`` the CPU time of every process (API workers, engine, db
writer, ws, Redis, PostgreSQL with its backends, the bare app, wrk) and prints CPU per request
per process. A phase with any socket error or any answer ≥ 400 is reported and its figures are
invalid: null in the JSON, and the bench exits 1. The last line is one JSON object (see
:func:`summary`). The cores are shared by everything here, so only ratios and CPU per request
measured in one run compare.

    python benchmarks/bench_http.py [--seconds 15] [--warmup 5] [--quick] [--api-workers 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
from bench_stack import ROOT, CpuMeter, Stack, admin_post, post_json, private_stack, stop_processes

from exchange.dev.localservers import free_port

MARKET = "TATA_INR"
PRICE = "100.00"
USERS = ("1", "2")
FUNDING = {"INR": "10000000000", "TATA": "100000000"}
SCRIPT = ROOT / "benchmarks" / "bench_http.lua"
BARE_APP = ROOT / "benchmarks" / "bare_http_app.py"
STACK_PROGRAMS = ("engine", "db", "api", "ws")
STACK_PROCESSES = (*STACK_PROGRAMS, "redis", "postgres")
WRK_MARKER = "BENCH_HTTP "


@attrs.frozen
class Target:
    """What one phase loads: a server and the script's mode ("order" or "depth")."""

    url: str
    mode: str


@attrs.frozen
class Result:
    name: str
    concurrency: int
    duration_s: float
    requests: int
    errors: dict[str, int]
    latency_ms: dict[str, float]
    cpu_s: dict[str, float]  # per process, during the measured run

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def valid(self) -> bool:
        return self.requests > 0 and self.error_count == 0

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s

    def cpu_ms_per_request(self) -> dict[str, float]:
        return {name: 1000 * used / max(1, self.requests) for name, used in self.cpu_s.items()}

    def stack_cpu_ms(self, processes: tuple[str, ...] = STACK_PROCESSES) -> float:
        per = self.cpu_ms_per_request()
        return sum(per[name] for name in processes)


# --- wrk -----------------------------------------------------------------------------------------


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("bench-http needs wrk: install it with `apt-get install wrk`")
    return path


def run_wrk(wrk: str, target: Target, concurrency: int, seconds: int) -> tuple[dict, float]:
    """One wrk run: (its report, its own CPU seconds)."""
    args = [MARKET, PRICE] if target.mode == "order" else [MARKET]
    command = [
        wrk, "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "10s",
        "-s", str(SCRIPT), target.url, "--", target.mode, *args,
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with process.stdout:
        output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    reports = [line for line in output.splitlines() if line.startswith(WRK_MARKER)]
    if process.returncode != 0 or not reports:
        raise RuntimeError(f"wrk failed ({process.returncode}):\n{output}")
    return json.loads(reports[-1][len(WRK_MARKER) :]), usage.ru_utime + usage.ru_stime


def run_phase(
    name: str, wrk: str, target: Target, concurrency: int, args: argparse.Namespace, meter: CpuMeter
) -> Result:
    print(f"{name}: c={concurrency}, {args.warmup} s warm-up, {args.seconds} s", file=sys.stderr)
    if args.warmup:
        run_wrk(wrk, target, concurrency, args.warmup)
    before = meter.sample()
    report, wrk_cpu_s = run_wrk(wrk, target, concurrency, args.seconds)
    after = meter.sample()
    cpu_s = CpuMeter.used(before, after)
    cpu_s["wrk"] = wrk_cpu_s  # it has exited: counted in "others" until now
    cpu_s["others"] = max(0.0, cpu_s["others"] - wrk_cpu_s)
    latency = report["latency_us"]
    return Result(
        name=name,
        concurrency=concurrency,
        duration_s=report["duration_us"] / 1e6,
        requests=report["requests"],
        errors=report["errors"],
        latency_ms={key: value / 1000 for key, value in latency.items()},
        cpu_s=cpu_s,
    )


# --- the two servers -----------------------------------------------------------------------------


def fund_and_sample(stack: Stack) -> tuple[dict, dict]:
    """Fund the two users; return an order reply (a crossing order's) and the depth then."""
    for user in USERS:
        for asset, amount in FUNDING.items():
            body = {"user_id": user, "asset": asset, "amount": amount}
            admin_post(stack.url, stack.admin_token, "/api/v1/admin/deposit", body)
    order = {"market": MARKET, "price": PRICE, "quantity": "1"}
    post_json(stack.url + "/api/v1/order", {**order, "side": "buy", "user_id": USERS[0]})
    with urllib.request.urlopen(f"{stack.url}/api/v1/depth?symbol={MARKET}") as response:
        depth = json.loads(response.read())  # one level: the most the bench's book ever holds
    crossing = post_json(
        stack.url + "/api/v1/order", {**order, "side": "sell", "user_id": USERS[1]}
    )
    return crossing, depth


@contextmanager
def bare_app(tmp: Path, workers: int, order_reply: dict, depth_reply: dict) -> Iterator[tuple]:
    """The bare app, answering; yields (its url, its pid)."""
    port = free_port()
    env = {
        **os.environ,
        "BARE_ORDER_REPLY": json.dumps(order_reply),
        "BARE_DEPTH_REPLY": json.dumps(depth_reply),
    }
    url = f"http://127.0.0.1:{port}"
    with open(tmp / "bare.log", "wb") as log:
        command = [sys.executable, str(BARE_APP), str(port), str(workers)]
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/api/v1/depth", timeout=2):
                        break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError((tmp / "bare.log").read_text()) from None
                    time.sleep(0.2)
            yield url, process.pid
        finally:
            stop_processes([process])


# --- the figures ---------------------------------------------------------------------------------


def ratio(a: Result, b: Result) -> float | None:
    return round(a.rps / b.rps, 3) if a.valid and b.valid else None


def valid_or_none(result: Result, value: float, digits: int = 3) -> float | None:
    return round(value, digits) if result.valid else None


def per_process(result: Result) -> dict[str, float]:
    return {name: round(ms, 3) for name, ms in result.cpu_ms_per_request().items()}


def summary(results: dict[str, Result], args: argparse.Namespace) -> dict:
    """The JSON line: throughput against the bare app, latency, CPU per order by process."""
    bare, bare64, bare_get = results["bare_c16"], results["bare_c64"], results["bare_get_c16"]
    c1, c16, c64, depth = (results[k] for k in ("order_c1", "order_c16", "order_c64", "depth_c16"))
    outside = tuple(name for name in STACK_PROCESSES if name != "api")
    return {
        "orders_per_s": valid_or_none(c16, c16.rps, 1),
        "bare_rps": valid_or_none(bare, bare.rps, 1),
        "orders_vs_bare": ratio(c16, bare),
        "orders_per_s_c64": valid_or_none(c64, c64.rps, 1),
        "bare_rps_c64": valid_or_none(bare64, bare64.rps, 1),
        "orders_vs_bare_c64": ratio(c64, bare64),
        "depth_rps": valid_or_none(depth, depth.rps, 1),
        "bare_get_rps": valid_or_none(bare_get, bare_get.rps, 1),
        "depth_vs_bare": ratio(depth, bare_get),
        "orders_per_s_c1": valid_or_none(c1, c1.rps, 1),
        "p50_c1_ms": valid_or_none(c1, c1.latency_ms["p50"]),
        "p99_c1_ms": valid_or_none(c1, c1.latency_ms["p99"]),
        "p50_ms": valid_or_none(c16, c16.latency_ms["p50"]),
        "p99_ms": valid_or_none(c16, c16.latency_ms["p99"]),
        "p99_ms_c64": valid_or_none(c64, c64.latency_ms["p99"]),
        # CPU of the stack's processes per order at c=16 (wrk and the idle bare app excluded)
        "cpu_ms_per_order": valid_or_none(c16, c16.stack_cpu_ms()),
        "cpu_ms_per_order_outside_api": valid_or_none(c16, c16.stack_cpu_ms(outside)),
        "bare_cpu_ms_per_request": valid_or_none(bare, bare.cpu_ms_per_request()["bare"]),
        "cpu_ms_per_order_by_process": per_process(c16) if c16.valid else None,
        "cpu_ms_per_request_by_phase": {
            name: per_process(result) for name, result in results.items() if result.valid
        },
        "errors": {name: r.errors for name, r in results.items() if r.error_count},
        "valid": all(result.valid for result in results.values()),
        "api_workers": args.api_workers,
        "seconds": args.seconds,
        "warmup_s": args.warmup,
    }


def describe(result: Result) -> str:
    per = result.cpu_ms_per_request()
    processes = (*STACK_PROCESSES, "bare", "wrk", "others")
    cpu = "  ".join(f"{name} {per[name]:.3f}" for name in processes)
    flag = "" if result.valid else f"  INVALID: errors {result.errors}"
    return (
        f"{result.name:<13} c={result.concurrency:<3} {result.rps:>8.0f} req/s  "
        f"p50 {result.latency_ms['p50']:7.2f} ms  p99 {result.latency_ms['p99']:7.2f} ms{flag}\n"
        f"{'':<13} CPU ms/request: {cpu}  (stack {result.stack_cpu_ms():.3f})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15, help="measured seconds per phase")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up seconds before each phase")
    parser.add_argument("--quick", action="store_true", help="a short check: 3 s, 1 s warm-up")
    parser.add_argument("--api-workers", type=int, default=1)
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.warmup = 3, 1
    wrk = wrk_binary()
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        tmp_path = Path(tmp)
        with private_stack(tmp_path, STACK_PROGRAMS, api_workers=args.api_workers) as stack:
            order_reply, depth_reply = fund_and_sample(stack)
            with bare_app(tmp_path, args.api_workers, order_reply, depth_reply) as (bare_url, pid):
                print(f"stack at {stack.url}, bare app at {bare_url}", file=sys.stderr)
                meter = CpuMeter({**stack.pids, "bare": pid})
                phases = [
                    ("bare_c16", Target(bare_url, "order"), 16),
                    ("bare_c64", Target(bare_url, "order"), 64),
                    ("order_c1", Target(stack.url, "order"), 1),
                    ("order_c16", Target(stack.url, "order"), 16),
                    ("order_c64", Target(stack.url, "order"), 64),
                    ("bare_get_c16", Target(bare_url, "depth"), 16),
                    ("depth_c16", Target(stack.url, "depth"), 16),
                ]
                results = {}
                for name, target, concurrency in phases:
                    results[name] = run_phase(name, wrk, target, concurrency, args, meter)
                    print(describe(results[name]), flush=True)
    figures = summary(results, args)
    if not figures["valid"]:
        print(f"INVALID: errors in {figures['errors']}", file=sys.stderr)
    print(json.dumps(figures))
    return 0 if figures["valid"] else 1


if __name__ == "__main__":
    sys.exit(main())
