"""The measuring tools of ``benchmarks/``: CPU read from /proc, and bench-http's wrk script.

These check that the instruments count what they claim (a process tree's CPU, wrk's requests
and errors); the benchmarks themselves are run by hand (``just bench-*``), never by the suite.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import attrs
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_http  # noqa: E402
from bench_stack import CpuMeter, tree_cpu_s  # noqa: E402

BURN_S = 0.3
# A parent whose child burns BURN_S of CPU; the parent reaps it on "reap" and then idles.
PARENT = f"""
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", '''
import sys, time
while time.process_time() < {BURN_S}:
    pass
print("burnt", flush=True)
sys.stdin.readline()
'''], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
child.stdout.readline()
print("burnt", flush=True)
sys.stdin.readline()
child.communicate("")
print("reaped", flush=True)
sys.stdin.readline()
"""


def test_tree_cpu_counts_a_child_while_it_lives_and_after_it_is_reaped():
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout.readline().strip() == "burnt"
        alive = tree_cpu_s(parent.pid)
        parent.stdin.write("\n")
        parent.stdin.flush()
        assert parent.stdout.readline().strip() == "reaped"
        reaped = tree_cpu_s(parent.pid)
    finally:
        parent.kill()
        parent.wait()
    assert alive >= BURN_S - 0.02  # clock ticks are 10 ms
    assert reaped >= alive  # the child's time moved into the parent's, none lost


def test_cpu_meter_splits_the_machine_into_named_trees_and_others():
    used = CpuMeter.used({"a": 1.0, "machine": 10.0}, {"a": 1.5, "machine": 12.0})
    assert used == {"a": 0.5, "others": 1.5}


needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")


def quick_args() -> argparse.Namespace:
    return argparse.Namespace(seconds=1, warmup=0)


@needs_wrk
def test_wrk_script_loads_the_bare_app_without_errors(tmp_path):
    order_reply = {"order_id": "1", "status": "filled", "side": "sell"}
    depth_reply = {"bids": [["100.00", "1"]], "asks": []}
    with bench_http.bare_app(tmp_path, 1, order_reply, depth_reply) as (url, pid):
        meter = CpuMeter({"bare": pid})
        for mode in ("order", "depth"):
            target = bench_http.Target(url, mode)
            result = bench_http.run_phase(mode, "wrk", target, 2, quick_args(), meter)
            assert result.requests > 0
            assert result.errors == dict.fromkeys(
                ("connect", "read", "write", "status", "timeout"), 0
            )
            assert result.valid
            assert result.cpu_s["bare"] > 0
            assert result.latency_ms["p50"] <= result.latency_ms["p99"]


class _Refusing(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _refuse(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b'{"error":{"code":"INVALID_REQUEST","message":"no"}}'
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _refuse

    def log_message(self, *args: object) -> None:
        pass


@needs_wrk
def test_answers_of_400_make_a_phase_and_its_figures_invalid():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        target = bench_http.Target(url, "order")
        result = bench_http.run_phase("order_c16", "wrk", target, 1, quick_args(), CpuMeter({}))
    finally:
        server.shutdown()
        server.server_close()
    assert result.errors["status"] == result.requests > 0
    assert not result.valid
    good = bench_http.Result(
        name="x",
        concurrency=16,
        duration_s=1.0,
        requests=100,
        errors={"status": 0},
        latency_ms={"p50": 1.0, "p99": 2.0},
        cpu_s=dict.fromkeys((*bench_http.STACK_PROCESSES, "bare", "wrk", "others"), 0.1),
    )
    results = {
        name: good
        for name in ("bare_c16", "bare_c64", "order_c1", "order_c64", "bare_get_c16", "depth_c16")
    }
    results["order_c16"] = attrs.evolve(good, requests=result.requests, errors=result.errors)
    figures = bench_http.summary(results, argparse.Namespace(api_workers=1, seconds=1, warmup=0))
    assert figures["valid"] is False
    assert figures["orders_per_s"] is None and figures["orders_vs_bare"] is None
    assert figures["cpu_ms_per_order"] is None
    assert figures["errors"] == {"order_c16": result.errors}
    assert figures["orders_vs_bare_c64"] == 1.0  # the other phases still count
