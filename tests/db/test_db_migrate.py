"""Migrations: fresh database, already migrated, two migrators at once, edited files refused."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from exchange.db.migrate import MigrationError, load_migrations, migrate, storage_mode

EXPECTED_TABLES = {
    "schema_migrations",
    "trades",
    "orders",
    "candles_1m",
    "candles_1h",
    "candles_1d",
}
EXPECTED_INDEXES = {
    "trades_pkey",
    "trades_market_time",
    "trades_buyer",
    "trades_seller",
    "trades_buy_order",
    "trades_sell_order",
    "orders_pkey",
    "orders_user_closed",
    "orders_user_client_id",
}
REPO = Path(__file__).resolve().parents[2]


def _schema(url: str) -> dict[str, set]:
    with psycopg.connect(url) as conn:
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
        indexes = {
            row[0]
            for row in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
        }
        money = {
            (row[0], row[1])
            for row in conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND data_type = 'numeric'"
            )
        }
        applied = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
    return {"tables": tables, "indexes": indexes, "numeric": money, "applied": applied}


def test_fresh_database_gets_the_whole_schema(database_url: str) -> None:
    names = [m.name for m in load_migrations()]
    assert names == sorted(names) and names[0].startswith("0001_")

    assert migrate(database_url) == names

    schema = _schema(database_url)
    assert schema["tables"] >= EXPECTED_TABLES
    assert schema["indexes"] >= EXPECTED_INDEXES
    assert schema["applied"] == set(names)
    # Every money column is NUMERIC.
    for table, column in [
        ("trades", "price"),
        ("trades", "quantity"),
        ("trades", "quote_quantity"),
        ("orders", "price"),
        ("orders", "quantity"),
        ("orders", "quote_quantity"),
        ("orders", "executed_quantity"),
        ("orders", "executed_quote_quantity"),
    ]:
        assert (table, column) in schema["numeric"]
    assert storage_mode(database_url) in ("postgresql",) or storage_mode(database_url).startswith(
        "timescaledb"
    )


def test_storage_mode_is_the_servers(database_url: str, postgres_server) -> None:
    """The timescaledb-mode server really has the extension, so that mode cannot pass as plain."""
    migrate(database_url)
    assert storage_mode(database_url).startswith("timescaledb") == postgres_server.timescaledb


def test_migrated_database_is_left_alone(database_url: str) -> None:
    migrate(database_url)
    before = _schema(database_url)
    assert migrate(database_url) == []
    assert migrate(database_url) == []
    assert _schema(database_url) == before


def test_two_migrators_at_once_apply_each_file_once(database_url: str) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(migrate(database_url))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    names = [m.name for m in load_migrations()]
    # One migrator applied everything; the other waited for the lock and found nothing to do.
    assert sorted(results, key=len) == [[], names]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(names)


def test_edited_migration_is_refused(database_url: str, tmp_path: Path) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(REPO / "sql" / "migrations", directory)
    migrate(database_url, directory)
    first = sorted(directory.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(database_url, directory)


def test_new_migration_is_applied_after_the_others(database_url: str, tmp_path: Path) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(REPO / "sql" / "migrations", directory)
    migrate(database_url, directory)
    (directory / "9999_extra.sql").write_text("CREATE TABLE extra (id int);")
    assert migrate(database_url, directory) == ["9999_extra.sql"]


def test_failed_migration_leaves_nothing_behind(database_url: str, tmp_path: Path) -> None:
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "0001_broken.sql").write_text("CREATE TABLE half (id int); SELECT no_such_fn();")
    with pytest.raises(psycopg.Error):
        migrate(database_url, directory)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regclass('half')").fetchone()[0] is None
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == 0


def test_misnamed_migration_is_refused(tmp_path: Path) -> None:
    (tmp_path / "init.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_description"):
        load_migrations(tmp_path)


def test_time_bucket_follows_timescaledb_origins(migrated_url: str) -> None:
    monday = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday
    cases = [
        ("1 week", monday + timedelta(days=6, hours=23, minutes=59, seconds=59), monday),
        ("1 week", monday + timedelta(days=7), monday + timedelta(days=7)),
        ("1 week", monday - timedelta(milliseconds=1), monday - timedelta(days=7)),
        ("1 day", monday + timedelta(hours=25), monday + timedelta(days=1)),
        ("4 hours", monday + timedelta(hours=7, minutes=59), monday + timedelta(hours=4)),
        ("15 minutes", monday + timedelta(minutes=44, seconds=59), monday + timedelta(minutes=30)),
        ("1 minute", monday + timedelta(seconds=59.999), monday),
    ]
    with psycopg.connect(migrated_url) as conn:
        for width, moment, expected in cases:
            got = conn.execute(
                "SELECT time_bucket(%s::interval, %s::timestamptz)", (width, moment)
            ).fetchone()[0]
            assert got == expected, (width, moment)


def test_cli_migrates_database_url(database_url: str) -> None:
    env = os.environ | {"DATABASE_URL": database_url}
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "exchange.db.migrate"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
        assert result.returncode == 0, result.stderr
    assert "storage: postgresql" in result.stderr or "storage: timescaledb" in result.stderr
    assert _schema(database_url)["tables"] >= EXPECTED_TABLES
