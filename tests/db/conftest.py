"""Fixtures of the db tests: a migrated database, the market configuration, writer settings."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import psycopg
import pytest

from exchange.db.migrate import migrate, storage_mode
from exchange.markets import MarketConfig, load_config
from exchange.settings import Settings


@pytest.fixture(scope="session")
def config() -> MarketConfig:
    return load_config()


@pytest.fixture
def migrated_url(database_url: str) -> str:
    """A fresh database with every migration applied."""
    migrate(database_url)
    return database_url


@pytest.fixture
def conn(migrated_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the migrated database (for checks and direct writes)."""
    with psycopg.connect(migrated_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def writer_settings(redis_url: str, migrated_url: str) -> Settings:
    """Settings of a writer on the test's Redis and database; claims idle entries at once."""
    return Settings(
        redis_url=redis_url, database_url=migrated_url, db_read_count=8, db_claim_idle_s=0.0
    )


@pytest.fixture
def timescaledb(migrated_url: str) -> bool:
    """Whether the test's database uses TimescaleDB (else plain PostgreSQL)."""
    return storage_mode(migrated_url).startswith("timescaledb")


@pytest.fixture
def timescaledb_only(timescaledb: bool) -> None:
    """Skip the test on plain PostgreSQL (it exercises TimescaleDB's own features)."""
    if not timescaledb:
        pytest.skip("a TimescaleDB feature: plain PostgreSQL has no columnstore nor chunks")


def _run_jobs(conn: psycopg.Connection, proc_name: str) -> int:
    """Run TimescaleDB's jobs of ``proc_name`` now, in ``conn`` (autocommit); returns how many.

    Each job is first taken off the background scheduler, which may have started it the
    moment its policy was added: the test runs it instead. A run that overlaps one still in
    progress is refused (a refresh: lock not available; a compression: "policy failure", the
    chunk being converted by the other run), so it is tried again until that one is done.
    """
    job_ids = [
        row[0]
        for row in conn.execute(
            "SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = %s ORDER BY job_id",
            [proc_name],
        )
    ]
    for job_id in job_ids:
        conn.execute("SELECT alter_job(%s, scheduled => false)", [job_id])
        for attempt in range(200):
            try:
                conn.execute("CALL run_job(%s)", [job_id])
                break
            except (psycopg.errors.LockNotAvailable, psycopg.errors.DataException) as error:
                overlapping = isinstance(error, psycopg.errors.LockNotAvailable) or (
                    "policy failure" in str(error)
                )
                if not overlapping or attempt == 199:
                    raise
                time.sleep(0.05)
    return len(job_ids)


@pytest.fixture
def run_jobs(conn: psycopg.Connection) -> Callable[[str], int]:
    """``run_jobs(proc_name)``: run TimescaleDB's jobs of that procedure now; returns how many
    (``policy_compression``, ``policy_retention``, ``policy_refresh_continuous_aggregate``)."""
    return lambda proc_name: _run_jobs(conn, proc_name)


@pytest.fixture
def run_refresh_policies(conn: psycopg.Connection, timescaledb: bool) -> Callable[[], None]:
    """Run the candles' refresh policies now (finest first), as the scheduler might at any
    moment; nothing to run on plain PostgreSQL."""

    def run() -> None:
        if timescaledb:
            assert _run_jobs(conn, "policy_refresh_continuous_aggregate") == 3

    return run
