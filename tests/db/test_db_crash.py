"""``kill -9`` of ``bin/db`` in the middle of its work, then restart: the tables equal the events,
the account ledger included (no movement missing or doubled)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import redis
from db_events import make_events, xadd_entries

from exchange import names
from exchange.db import consumer
from exchange.markets import MarketConfig

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 90


def _start_writer(redis_url: str, database_url: str, log_path: Path) -> subprocess.Popen:
    env = os.environ | {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        # Small transactions: many commits, so a kill lands between and inside them.
        "DB_READ_COUNT": "2",
        "DB_CLAIM_IDLE_S": "3600",
    }
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, str(REPO / "bin" / "db")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )


def _trade_count(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM trades").fetchone()[0]


def _wait(predicate, what: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if process.poll() is not None:
            pytest.fail(f"bin/db exited with {process.returncode}:\n{log_path.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.005)


def _drained(client: redis.Redis) -> bool:
    for group in client.xinfo_groups(names.EVENT_STREAM):
        if group["name"] == consumer.EVENTS_GROUP.encode():
            return group["pending"] == 0 and group["lag"] == 0
    return False


@pytest.mark.slow
def test_kill_9_mid_batch_then_restart(
    config: MarketConfig, redis_url: str, migrated_url: str, tmp_path: Path
) -> None:
    events = make_events(config, seed=5, commands=6000, batch_commands=20, users=30)
    total = len(events.trades)
    client = redis.Redis.from_url(redis_url)
    xadd_entries(client, events.entries)
    log_path = tmp_path / "db.log"

    # Kill it three times at growing fractions of the work, each while it is writing.
    for fraction in (0.2, 0.45, 0.7):
        process = _start_writer(redis_url, migrated_url, log_path)
        try:
            _wait(
                lambda: _trade_count(migrated_url) >= fraction * total,  # noqa: B023
                f"{fraction:.0%} of the trades",
                process,
                log_path,
            )
            os.kill(process.pid, signal.SIGKILL)
        finally:
            process.kill()
            process.wait(10)
        # Entries were in flight: read but not acknowledged.
        assert not _drained(client)
        assert _trade_count(migrated_url) < total

    process = _start_writer(redis_url, migrated_url, log_path)
    try:
        _wait(lambda: _drained(client), "the backlog to drain", process, log_path)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log_path.read_text()[-3000:]
    finally:
        process.kill()
        process.wait(10)

    with psycopg.connect(migrated_url) as conn:
        rows = conn.execute("SELECT market, count(*), sum(quantity) FROM trades GROUP BY market")
        assert {market: (count, qty) for market, count, qty in rows} == events.trade_totals()
        orders = conn.execute(
            "SELECT order_id, status, executed_quantity::text, executed_quote_quantity::text "
            "FROM orders"
        ).fetchall()
        ledger = conn.execute(
            "SELECT user_id, asset, sum(amount), count(*) FROM ledger GROUP BY user_id, asset"
        ).fetchall()
    # Every movement once: a deposit each, four legs per trade (no fees in these markets), and
    # each balance the sum of its movements.
    assert sum(count for *_, count in ledger) == events.transfers + 4 * total
    assert {(user, asset): int(amount) for user, asset, amount, _ in ledger if amount} == (
        events.ledger_totals()
    )
    assert len(orders) == len(events.orders)
    for order_id, status, executed, executed_quote in orders:
        expected = events.orders[order_id]
        assert status == expected["status"]
        assert Decimal(executed) == Decimal(expected["executed_quantity"])
        assert Decimal(executed_quote) == Decimal(expected["executed_quote_quantity"])
