"""Benchmark of the db side: writer throughput from a backlog, and klines queries.

1. The real engine turns a seeded order flow into events-stream entries (512 commands per entry,
   like the engine service's batches) holding at least 200,000 trades plus their order updates,
   balance and depth events, dated from an hour ago (see build_backlog); they are appended to a
   private Redis. ``bin/db`` (a subprocess, as deployed) then drains the backlog into a private
   PostgreSQL: trades/s = trades / time from its readiness to the last acknowledgement (the
   figure with its start-up is printed too).
2. 1,000,000 trades of one market over 30 days are COPYed straight into ``trades`` (and, on
   TimescaleDB, the candles settled as the writer does); the API's klines queries are timed:
   1-hour (latest 500 buckets, and 500 from a start time) and 1-minute (latest 500).

``--ledger both`` drains the same backlog twice, into fresh databases, with the account ledger
on and off (``DB_LEDGER``), and reports both rates and the ledger's cost (target: at most 20%
fewer trades/s with it on); it drains ``--pairs`` (default 3) such pairs, alternating which
setting goes first, and reports the medians (one pair of the same code ranged 12-29%); ``--ledger off`` measures without it (default: on, as
deployed).

``--mode both`` (the default when TimescaleDB is installed) runs everything on plain PostgreSQL
and on TimescaleDB, one fresh server each, and prints them side by side; ``--size tiny`` runs
a few thousand trades to check that the benchmark works. The last line is JSON: per mode,
``trades_per_s``, ``klines_1h_ms`` (median of the latest-500 query), ``klines_1h_from_ms``
and ``klines_1m_ms``. Targets: >= 20,000 trades/s in both modes; klines < 50 ms, and on
TimescaleDB no slower than on plain PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import redis
import trio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "db"))

from db_events import make_events, xadd_entries  # noqa: E402

from exchange import names  # noqa: E402
from exchange.db import consumer, copy_batch  # noqa: E402
from exchange.db.migrate import migrate, storage_mode  # noqa: E402
from exchange.dev.localservers import (  # noqa: E402
    PostgresServer,
    RedisServer,
    timescaledb_installed,
)
from exchange.history.queries import HistoryQueries, to_ms  # noqa: E402
from exchange.markets import load_config  # noqa: E402

# --size: (backlog trades, klines trades)
SIZES = {"full": (200_000, 1_000_000), "tiny": (5_000, 20_000)}
ENGINE_BATCH_COMMANDS = 512
KLINE_SPAN = timedelta(days=30)
BACKLOG_AGE = timedelta(hours=1)
KLINE_RUNS = 50
TIMEOUT_S = 600


def build_backlog(backlog_trades: int) -> tuple[list[bytes], int]:
    """The events of >= backlog_trades trades; returns (entries, trades).

    Dated from BACKLOG_AGE ago, as a live writer's trades are: dated in the flow's 2023, every
    chunk would already be older than the compression age (HISTORY_COMPRESS_AFTER_DAYS, default
    7), so the policy would compress chunks the writer is still upserting orders into, several
    times slower, which a deployed writer never meets.
    """
    started = time.perf_counter()
    start_ts_ms = int((datetime.now(UTC) - BACKLOG_AGE).timestamp() * 1000)
    log = make_events(
        load_config(),
        seed=2024,
        commands=0,
        min_trades=backlog_trades,
        batch_commands=ENGINE_BATCH_COMMANDS,
        users=1000,
        start_ts_ms=start_ts_ms,
    )
    print(
        f"backlog: {len(log.entries)} entries, {len(log.trades)} trades, {len(log.orders)} orders"
        f" (made in {time.perf_counter() - started:.1f}s)"
    )
    return log.entries, len(log.trades)


def load_backlog(redis_url: str, entries: list[bytes]) -> None:
    """A fresh events stream (no consumer group yet) holding ``entries``."""
    client = redis.Redis.from_url(redis_url)
    client.delete(names.EVENT_STREAM)
    xadd_entries(client, entries)
    client.close()


def drained(client: redis.Redis) -> bool:
    """Every entry delivered to the writers' group and acknowledged."""
    for group in client.xinfo_groups(names.EVENT_STREAM):
        if group["name"] == consumer.EVENTS_GROUP.encode():
            return group["pending"] == 0 and group["lag"] == 0
    return False


def drain(
    redis_url: str, database_url: str, log_path: Path, *, ledger: bool = True
) -> tuple[float, float]:
    """Run bin/db until the backlog is written; returns seconds from its start and from its
    "ready" log line (after imports, migration check and connecting) to the last XACK."""
    env = os.environ | {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "DB_LEDGER": "1" if ledger else "0",
    }
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, str(REPO / "bin" / "db")], env=env, stdout=log, stderr=log
        )
    client = redis.Redis.from_url(redis_url)
    try:
        ready = None
        while not drained(client):
            if ready is None and b"db writer ready" in log_path.read_bytes():
                ready = time.perf_counter()
            if process.poll() is not None or time.perf_counter() - started > TIMEOUT_S:
                raise RuntimeError(f"bin/db failed:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.02)
        finished = time.perf_counter()
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    finally:
        client.close()
        process.kill()
        process.wait()
    return finished - started, finished - (ready or started)


def copy_kline_trades(url: str, count: int) -> None:
    """``count`` trades of TATA_INR over KLINE_SPAN ending now, COPYed into trades."""
    rng = random.Random(1)
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - KLINE_SPAN
    step = KLINE_SPAN / count
    price = 10_000
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY trades (id, time, market, price, quantity, quote_quantity, is_buyer_maker,"
            " buy_order_id, sell_order_id, buyer_id, seller_id, seq) FROM STDIN"
        ) as copy:
            for trade_id in range(1, count + 1):
                price = max(1, price + rng.randint(-3, 3))
                lots = rng.randint(1, 500)
                copy.write_row(
                    (
                        trade_id,
                        start + step * trade_id,
                        "TATA_INR",
                        Decimal(price).scaleb(-2),
                        Decimal(lots).scaleb(-2),
                        Decimal(price * lots).scaleb(-4),
                        rng.random() < 0.5,
                        2 * trade_id,
                        2 * trade_id + 1,
                        f"user{rng.randrange(1000)}",
                        f"user{rng.randrange(1000)}",
                        trade_id,
                    )
                )
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        # What the writer does after a batch: continuous aggregates refreshed up to their
        # horizons (nothing to do on plain PostgreSQL, whose trigger kept the candles).
        copy_batch.settle_candles(conn, to_ms(start), to_ms(end))


async def time_klines(url: str) -> dict[str, float]:
    """Median milliseconds of each klines query over KLINE_RUNS runs (after a warm-up)."""
    from_time = datetime.now(UTC) - KLINE_SPAN + timedelta(days=3)
    queries = {
        "klines_1h_ms": ("1h", None),
        "klines_1h_from_ms": ("1h", from_time),
        "klines_1m_ms": ("1m", None),
    }
    times: dict[str, list[float]] = {name: [] for name in queries}
    async with HistoryQueries(url) as history:
        for interval, start in queries.values():
            assert await history.klines("TATA_INR", interval, start, None, 500)  # warm up
        for _ in range(KLINE_RUNS):
            for name, (interval, start) in queries.items():
                began = time.perf_counter()
                await history.klines("TATA_INR", interval, start, None, 500)
                times[name].append((time.perf_counter() - began) * 1000)
    return {name: round(statistics.median(values), 2) for name, values in times.items()}


def run_mode(mode: str, size: str, ledgers: list[bool], pairs: int = 1) -> dict[str, float]:
    """Both measurements on fresh servers, PostgreSQL plain or with TimescaleDB preloaded; the
    writer's ``pairs`` times per ledger setting, each drain into a database of its own, the
    settings' order alternating from one pair to the next (so neither always runs first)."""
    backlog_trades, kline_trades = SIZES[size]
    with (
        tempfile.TemporaryDirectory(prefix="bench-db-") as tmp,
        RedisServer.start(Path(tmp) / "redis") as redis_server,
        PostgresServer.start(Path(tmp) / "pg", timescaledb=mode == "timescaledb") as pg_server,
    ):
        backlog, trades = build_backlog(backlog_trades)
        rates: dict[bool, list[float]] = {ledger: [] for ledger in ledgers}
        for pair in range(pairs):
            for ledger in ledgers if pair % 2 == 0 else ledgers[::-1]:
                label = "ledger on" if ledger else "ledger off"
                writer_url = pg_server.create_database(f"writer_{'on' if ledger else 'off'}_{pair}")
                migrate(writer_url)
                print(f"[{mode}] storage: {storage_mode(writer_url)}; PostgreSQL with fsync on")
                load_backlog(redis_server.url, backlog)
                total_s, elapsed = drain(
                    redis_server.url, writer_url, Path(tmp) / "db.log", ledger=ledger
                )
                with psycopg.connect(writer_url) as conn:
                    stored = conn.execute("SELECT count(*) FROM trades").fetchone()[0]
                    orders = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
                    movements = conn.execute("SELECT count(*) FROM ledger").fetchone()[0]
                assert stored == trades, (stored, trades)
                assert (movements >= 4 * trades) if ledger else movements == 0, movements
                trades_per_s = trades / elapsed
                print(
                    f"[{mode}] writer (bin/db, {label}): {len(backlog)} entries, {trades} trades,"
                    f" {orders} orders, {movements} ledger movements in {elapsed:.2f}s"
                    f" -> {trades_per_s:,.0f} trades/s"
                    f" ({total_s:.2f}s, {trades / total_s:,.0f} trades/s counting its start-up)"
                )
                rates[ledger].append(trades_per_s)

        klines_url = pg_server.create_database("klines")
        migrate(klines_url)
        began = time.perf_counter()
        copy_kline_trades(klines_url, kline_trades)
        print(
            f"[{mode}] klines: {kline_trades:,} trades COPYed in {time.perf_counter() - began:.1f}s"
        )
        klines = trio.run(time_klines, klines_url)
        print(f"[{mode}] klines medians (ms): {klines}")
    if len(rates) == 1:
        return {"trades_per_s": round(statistics.median(next(iter(rates.values())))), **klines}
    slowdowns = [100 * (off - on) / off for on, off in zip(rates[True], rates[False], strict=True)]
    slowdown = statistics.median(slowdowns)
    print(
        f"[{mode}] the ledger costs {slowdown:.1f}% of the writer's trades/s (target <= 20%)"
        + (f"; median of {pairs} pairs: " + ", ".join(f"{x:.1f}%" for x in slowdowns)) * (pairs > 1)
    )
    return {
        "trades_per_s": round(statistics.median(rates[True])),
        "trades_per_s_ledger_off": round(statistics.median(rates[False])),
        "ledger_slowdown_pct": round(slowdown, 1),
        **klines,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mode",
        choices=["plain", "timescaledb", "both"],
        default="both" if timescaledb_installed() else "plain",
        help="storage mode(s) to measure (default: both when TimescaleDB is installed)",
    )
    parser.add_argument("--size", choices=list(SIZES), default="full")
    parser.add_argument(
        "--ledger",
        choices=["on", "off", "both"],
        default="on",
        help="write the account ledger (DB_LEDGER); both: measure its cost",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=3,
        help="with --ledger both: drain this many on/off pairs, alternating which goes first,"
        " and report the median of their slowdowns (these machines are noisy)",
    )
    args = parser.parse_args()
    modes = ["plain", "timescaledb"] if args.mode == "both" else [args.mode]
    ledgers = {"on": [True], "off": [False], "both": [True, False]}[args.ledger]
    pairs = args.pairs if args.ledger == "both" else 1
    results = {mode: run_mode(mode, args.size, ledgers, pairs) for mode in modes}
    names = list(next(iter(results.values())))
    print(f"{'':22}" + "".join(f"{mode:>14}" for mode in modes))
    for name in names:
        print(f"{name:22}" + "".join(f"{results[mode][name]:>14,}" for mode in modes))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
