"""Shared fixtures: one throwaway Redis and PostgreSQL in both storage modes per test session.

The servers are private children of the test run (see :mod:`exchange.dev.localservers`) on free
ports, so tests never touch the machine's own Redis (6379) or PostgreSQL (5432). Each test gets an
empty Redis (FLUSHALL) and, when it asks for one, a database of its own.

Every test that uses PostgreSQL runs twice: on plain PostgreSQL (``[plain]``) and on a server
with TimescaleDB preloaded (``[timescaledb]``), so neither storage mode can rot. The second is
skipped, saying why, where the extension is not installed (``.ci/run`` installs it when
``../shared/timescaledb`` has it).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
import redis
import trio
from psycopg import sql

from exchange.dev.localservers import PostgresServer, RedisServer, timescaledb_installed
from exchange.settings import Settings

STORAGE_MODES = ("plain", "timescaledb")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a test that takes seconds rather than milliseconds")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private ``redis-server`` with AOF on (``appendfsync everysec``)."""
    with RedisServer.start(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session", params=STORAGE_MODES)
def postgres_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster with fsync off (fast, and nobody minds if it is lost), plain
    or with TimescaleDB preloaded."""
    timescaledb = request.param == "timescaledb"
    if timescaledb and not timescaledb_installed():
        pytest.skip(
            "TimescaleDB is not installed into this PostgreSQL "
            "(../shared/timescaledb/install.sh, or Timescale's packages)"
        )
    with PostgresServer.start(
        tmp_path_factory.mktemp(f"postgres-{request.param}"), fsync=False, timescaledb=timescaledb
    ) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of the session's Redis, emptied for this test."""
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database for this test, dropped after it (with TimescaleDB each
    database has a job scheduler of its own, which must not pile up over a session)."""
    name = f"t_{uuid.uuid4().hex}"
    yield postgres_server.create_database(name)
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
async def engine_service(redis_url: str, nursery: trio.Nursery) -> AsyncIterator[Settings]:
    """The engine service (``exchange.engine.program.run``) on this test's Redis, serving in the
    background until the test ends (then it stops cleanly: flush, snapshot). Yields its Settings;
    talk to it with ``exchange.gateway.open_gateway(settings.redis_url)``."""
    from exchange.engine import program

    settings = Settings(redis_url=redis_url)
    await nursery.start(program.run, settings)
    yield settings
