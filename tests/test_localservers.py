"""The throwaway servers behind the fixtures start, answer, and survive a crash."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psycopg
import pytest
import redis

from exchange.dev.localservers import PostgresServer, RedisServer, free_port


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_redis_url_is_private_and_empty(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert ":6379/" not in redis_url
        assert client.dbsize() == 0
        client.set("key", "value")
        assert client.get("key") == b"value"
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("save") == {"save": ""}
    finally:
        client.close()


def test_redis_is_flushed_between_tests(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.get("key") is None
    finally:
        client.close()


def test_database_url_answers(database_url: str) -> None:
    assert ":5432/" not in database_url
    with psycopg.connect(database_url) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_each_test_gets_its_own_database(postgres_server: PostgresServer) -> None:
    first = postgres_server.create_database("t_first")
    second = postgres_server.create_database("t_second")
    assert first != second
    with psycopg.connect(first, autocommit=True) as conn:
        conn.execute("create table only_in_first (x int)")
    with psycopg.connect(second) as conn:
        assert conn.execute("select current_database()").fetchone() == ("t_second",)
        assert conn.execute("select to_regclass('only_in_first')").fetchone() == (None,)


def test_ensure_database_creates_once_and_keeps_what_is_there(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.ensure_database("t_ensured")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create table kept (x int)")
        conn.execute("insert into kept values (7)")
    assert postgres_server.ensure_database("t_ensured") == url
    with psycopg.connect(url) as conn:
        assert conn.execute("select x from kept").fetchall() == [(7,)]


def _get(server: RedisServer, key: str) -> bytes | None:
    client = server.client()
    try:
        return client.get(key)
    finally:
        client.close()


def test_redis_keeps_aof_data_across_kill(tmp_path: Path) -> None:
    with RedisServer.start(tmp_path / "redis") as server:
        client = server.client()
        client.set("survivor", "1")  # everysec: in the AOF (the kernel's) before the reply
        client.close()
        pid = server.pid
        assert pid is not None

        server.kill()  # SIGKILL: no shutdown save, only the AOF can bring the key back
        assert not server.running
        assert not _alive(pid)
        server.restart()
        assert _get(server, "survivor") == b"1"

        # Killed by someone else (kill -9, the OOM killer): it says how, and restarts.
        assert server.running and server.exit_code is None
        assert server.pid is not None
        os.kill(server.pid, signal.SIGKILL)
        os.waitid(os.P_PID, server.pid, os.WEXITED | os.WNOWAIT)
        assert not server.running
        assert server.exit_code == -signal.SIGKILL
        server.restart()
        assert _get(server, "survivor") == b"1"


@pytest.mark.slow
def test_postgres_restarts_after_kill(tmp_path: Path) -> None:
    port = free_port()
    with PostgresServer.start(tmp_path / "pg", port=port, fsync=False) as server:
        url = server.create_database("kept")
        server.stop()  # clean shutdown: the new database is on disk
        server.restart()
        with psycopg.connect(url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)

        pid = server.pid
        assert pid is not None
        server.kill()
        assert not _alive(pid)
        server.restart()
        assert server.port == port
        with psycopg.connect(url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
