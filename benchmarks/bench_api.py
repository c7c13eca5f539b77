"""REST API benchmark: ``just bench-api``.

Starts a private stack (Redis and PostgreSQL from :mod:`exchange.dev.localservers`, ``bin/engine``,
``bin/db`` and ``bin/api`` with ``--api-workers`` processes), funds ``--users`` users through
the admin API, then runs ``benchmarks/loadgen.py`` (its own process, with a progress display):

1. single crossing limit orders (POST /api/v1/order) at concurrency 16, then 64;
2. batches of 50 (POST /api/v1/orders) at concurrency 16;
3. GET /api/v1/depth at concurrency 16;
4. (apikey mode) the single orders of 1. through POST /backpack/api/v1/order, signed with
   ED25519, at concurrency 16: ``backpack_orders_per_s`` and ``backpack_cost_pct``, the
   facade's cost against the native endpoint.

Everything shares this machine's cores with the load generator, so the figures are for the
whole system, not the API alone. Prints each run and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_stack import ROOT, CpuMeter, private_stack


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def loadgen(url: str, args: argparse.Namespace, extra: list[str]) -> dict:
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "loadgen.py"),
        "--url",
        url,
        "--users-file",
        str(args.users_file),
        "--auth",
        args.auth,
        *extra,
    ]
    before = args.meter.sample()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    stdout, _ = process.communicate()
    after = args.meter.sample()
    if process.returncode != 0:
        raise RuntimeError(f"loadgen failed ({process.returncode})")
    result = json.loads(stdout.strip().splitlines()[-1])
    used = CpuMeter.used(before, after)
    # the load generator has exited: its CPU is in our children's rusage (and in "others")
    used["loadgen"] = args.meter.loadgen_s()
    used["others"] = max(0.0, used["others"] - used["loadgen"])
    elapsed = result["duration_s"] or 1.0
    result["cores"] = {name: round(value / elapsed, 2) for name, value in used.items()}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description="REST API benchmark")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--auth", choices=("apikey", "dev"), default="apikey")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        tmp_path = Path(tmp)
        args.users_file = tmp_path / "users.json"
        with private_stack(tmp_path, api_workers=args.api_workers, auth=args.auth) as stack:
            url = stack.url
            meter = CpuMeter(stack.pids)
            children_s = [_children_cpu_s()]

            def loadgen_s() -> float:
                now = _children_cpu_s()
                spent, children_s[0] = now - children_s[0], now
                return spent

            meter.loadgen_s = loadgen_s  # type: ignore[attr-defined]
            args.meter = meter
            print(f"stack ready: {args.api_workers} API workers at {url}", file=sys.stderr)
            subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "benchmarks" / "loadgen.py"),
                    "--url",
                    url,
                    "--fund",
                    "--users",
                    str(args.users),
                    "--auth",
                    args.auth,
                    "--admin-token",
                    stack.admin_token,
                    "--users-file",
                    str(args.users_file),
                    "--duration",
                    "0.5",
                    "--mode",
                    "depth",
                    "--concurrency",
                    "1",
                ],
                stdout=subprocess.DEVNULL,
                check=True,
            )
            loadgen_s()  # funding is not part of any run
            duration = ["--duration", str(args.duration)]
            runs = {
                "order_c16": loadgen(
                    url, args, ["--mode", "order", "--concurrency", "16", *duration]
                ),
                "order_c64": loadgen(
                    url, args, ["--mode", "order", "--concurrency", "64", *duration]
                ),
                "batch_c16": loadgen(
                    url, args, ["--mode", "batch", "--concurrency", "16", *duration]
                ),
                "depth_c16": loadgen(
                    url, args, ["--mode", "depth", "--concurrency", "16", *duration]
                ),
            }
            if args.auth == "apikey":  # /backpack is always signed: needs the users' keys
                runs["backpack_c16"] = loadgen(
                    url, args, ["--mode", "backpack", "--concurrency", "16", *duration]
                )
    for name, run in runs.items():
        print(
            f"{name:<10} {run['requests_per_s']:>9.0f} req/s {run['orders_per_s']:>9.0f} orders/s "
            f"p50 {run['p50_ms']:6.2f} ms  p99 {run['p99_ms']:6.2f} ms  errors {run['errors']} "
            f"{run['statuses']}"
        )
        print(f"{'':<10} cores busy: {run['cores']}")
    summary = {
        "orders_per_s": runs["order_c16"]["orders_per_s"],
        "p50_ms": runs["order_c16"]["p50_ms"],
        "p99_ms": runs["order_c16"]["p99_ms"],
        "orders_per_s_c64": runs["order_c64"]["orders_per_s"],
        "p99_ms_c64": runs["order_c64"]["p99_ms"],
        "batch_orders_per_s": runs["batch_c16"]["orders_per_s"],
        "depth_rps": runs["depth_c16"]["requests_per_s"],
        # the same single orders through /backpack (ED25519), and what the facade costs
        "backpack_orders_per_s": runs.get("backpack_c16", {}).get("orders_per_s"),
        "backpack_p99_ms": runs.get("backpack_c16", {}).get("p99_ms"),
        "backpack_cost_pct": (
            round(
                100
                * (1 - runs["backpack_c16"]["orders_per_s"] / runs["order_c16"]["orders_per_s"]),
                1,
            )
            if "backpack_c16" in runs and runs["order_c16"]["orders_per_s"]
            else None
        ),
        "api_workers": args.api_workers,
        "auth": args.auth,
        "duration_s": args.duration,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
