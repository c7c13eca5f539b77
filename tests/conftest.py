"""Shared fixtures: one throwaway Redis and one PostgreSQL per test session.

The servers are private children of the test run (see :mod:`exchange.localservers`) on free
ports, so tests never touch the machine's own Redis (6379) or PostgreSQL (5432). Each test gets an
empty Redis (FLUSHALL) and, when it asks for one, a database of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import trio

from exchange.localservers import PostgresServer, RedisServer
from exchange.settings import Settings


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a test that takes seconds rather than milliseconds")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private ``redis-server`` with AOF on (``appendfsync everysec``)."""
    with RedisServer.start(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster with fsync off: fast, and nobody minds if it is lost."""
    with PostgresServer.start(tmp_path_factory.mktemp("postgres"), fsync=False) as server:
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
def database_url(postgres_server: PostgresServer) -> str:
    """The URL of a new, empty database for this test (left behind; the cluster is throwaway)."""
    return postgres_server.create_database(f"t_{uuid.uuid4().hex}")


@pytest.fixture
async def engine_service(redis_url: str, nursery: trio.Nursery) -> AsyncIterator[Settings]:
    """The engine service (``exchange.engine.service.run``) on this test's Redis, serving in the
    background until the test ends (then it stops cleanly: flush, snapshot). Yields its Settings;
    talk to it with ``exchange.gateway.open_gateway(settings.redis_url)``."""
    from exchange.engine import service

    settings = Settings(redis_url=redis_url)
    await nursery.start(service.run, settings)
    yield settings
