"""Benchmark of the db side: writer throughput from a backlog, and a 1-hour klines query.

1. The real engine turns a seeded order flow into events-stream entries (512 commands per entry,
   like the engine service's batches) holding at least 200,000 trades plus their order updates,
   balance and depth events; they are appended to a private Redis. ``bin/db`` (a subprocess, as
   deployed) then drains the backlog into a private PostgreSQL: trades/s = trades / time from
   its readiness to the last acknowledgement (the figure with its start-up is printed too).
2. 1,000,000 trades of one market over 30 days are COPYed straight into ``trades``; the time of
   the API's 1-hour klines query (latest 500 buckets, and 500 from a start time) is measured.

Prints figures; the last line is JSON with ``trades_per_s`` and ``klines_ms`` (median of the
latest-500 query). Targets: >= 20,000 trades/s; klines < 50 ms.
"""

from __future__ import annotations

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

from exchange import bus  # noqa: E402
from exchange.db import writer  # noqa: E402
from exchange.db.migrate import migrate, storage_mode  # noqa: E402
from exchange.db.queries import HistoryQueries  # noqa: E402
from exchange.localservers import PostgresServer, RedisServer  # noqa: E402
from exchange.markets import load_config  # noqa: E402

BACKLOG_TRADES = 200_000
ENGINE_BATCH_COMMANDS = 512
KLINE_TRADES = 1_000_000
KLINE_SPAN = timedelta(days=30)
KLINE_RUNS = 50
TIMEOUT_S = 600


def build_backlog(redis_url: str) -> tuple[int, int]:
    """Append the events of >= BACKLOG_TRADES trades; returns (entries, trades)."""
    started = time.perf_counter()
    log = make_events(
        load_config(),
        seed=2024,
        commands=0,
        min_trades=BACKLOG_TRADES,
        batch_commands=ENGINE_BATCH_COMMANDS,
        users=1000,
    )
    client = redis.Redis.from_url(redis_url)
    xadd_entries(client, log.entries)
    client.close()
    print(
        f"backlog: {len(log.entries)} entries, {len(log.trades)} trades, {len(log.orders)} orders"
        f" (made in {time.perf_counter() - started:.1f}s)"
    )
    return len(log.entries), len(log.trades)


def drained(client: redis.Redis) -> bool:
    """Every entry delivered to the writers' group and acknowledged."""
    for group in client.xinfo_groups(bus.EVENT_STREAM):
        if group["name"] == writer.EVENTS_GROUP.encode():
            return group["pending"] == 0 and group["lag"] == 0
    return False


def drain(redis_url: str, database_url: str, log_path: Path) -> tuple[float, float]:
    """Run bin/db until the backlog is written; returns seconds from its start and from its
    "ready" log line (after imports, migration check and connecting) to the last XACK."""
    env = os.environ | {"REDIS_URL": redis_url, "DATABASE_URL": database_url}
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


def copy_kline_trades(url: str) -> None:
    """KLINE_TRADES trades of TATA_INR over KLINE_SPAN ending now, COPYed into trades."""
    rng = random.Random(1)
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - KLINE_SPAN
    step = KLINE_SPAN / KLINE_TRADES
    price = 10_000
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY trades (id, time, market, price, quantity, quote_quantity, is_buyer_maker,"
            " buy_order_id, sell_order_id, buyer_id, seller_id, seq) FROM STDIN"
        ) as copy:
            for trade_id in range(1, KLINE_TRADES + 1):
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
    if storage_mode(url) != "postgresql":
        # Continuous aggregates: materialise now rather than wait for the refresh policy.
        with psycopg.connect(url, autocommit=True) as conn:
            for view in ("candles_1m", "candles_1h", "candles_1d"):
                conn.execute(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")


async def time_klines(url: str) -> tuple[list[float], list[float], int]:
    start_time = datetime.now(UTC) - KLINE_SPAN + timedelta(days=3)
    latest, ranged = [], []
    async with HistoryQueries(url) as history:
        candles = await history.klines("TATA_INR", "1h", None, None, 500)  # warm up
        for _ in range(KLINE_RUNS):
            began = time.perf_counter()
            await history.klines("TATA_INR", "1h", None, None, 500)
            latest.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            await history.klines("TATA_INR", "1h", start_time, None, 500)
            ranged.append((time.perf_counter() - began) * 1000)
    return latest, ranged, len(candles)


def main() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="bench-db-") as tmp,
        RedisServer.start(Path(tmp) / "redis") as redis_server,
        PostgresServer.start(Path(tmp) / "pg") as pg_server,
    ):
        writer_url = pg_server.create_database("writer")
        migrate(writer_url)
        print(f"storage: {storage_mode(writer_url)}; PostgreSQL with fsync on")
        entries, trades = build_backlog(redis_server.url)
        total_s, elapsed = drain(redis_server.url, writer_url, Path(tmp) / "db.log")
        with psycopg.connect(writer_url) as conn:
            stored = conn.execute("SELECT count(*) FROM trades").fetchone()[0]
            orders = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
        assert stored == trades, (stored, trades)
        trades_per_s = trades / elapsed
        print(
            f"writer (bin/db): {entries} entries, {trades} trades, {orders} orders in"
            f" {elapsed:.2f}s -> {trades_per_s:,.0f} trades/s"
            f" ({total_s:.2f}s, {trades / total_s:,.0f} trades/s counting its start-up)"
        )

        klines_url = pg_server.create_database("klines")
        migrate(klines_url)
        began = time.perf_counter()
        copy_kline_trades(klines_url)
        print(f"klines: {KLINE_TRADES:,} trades COPYed in {time.perf_counter() - began:.1f}s")
        latest, ranged, buckets = trio.run(time_klines, klines_url)
        klines_ms = statistics.median(latest)
        print(
            f"klines 1h latest {buckets}: median {klines_ms:.2f} ms, max {max(latest):.2f} ms;"
            f" from a start time: median {statistics.median(ranged):.2f} ms"
        )
    print(json.dumps({"trades_per_s": round(trades_per_s), "klines_ms": round(klines_ms, 2)}))


if __name__ == "__main__":
    main()
