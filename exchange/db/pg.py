"""psycopg for trio: blocking calls in worker threads, connection errors as ServiceUnavailable.

This is the one place the programs touch psycopg's connections. Work is a plain function
``fn(conn, *args)`` that runs whole in a ``trio.to_thread`` worker, behind a CapacityLimiter, so
the trio loop never blocks; a thread cannot be cancelled, so a transaction that has started
always finishes (commits or rolls back) before a cancelled caller unwinds.

Two shapes:

- :class:`DedicatedConnection`: one connection, one call at a time (the writer: its temp tables
  live in its session). It reconnects lazily after a failure.
- :class:`PooledConnections`: a psycopg_pool ``ConnectionPool`` for concurrent read-only queries
  (the API), which retries a read once on a broken connection (e.g. after a server restart).

Connection-level failures (server down, restarting, connection lost, no connection in time) are
raised as :class:`~exchange.errors.ServiceUnavailable`; other psycopg errors (a bad statement,
bad data) are bugs and pass through unchanged.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
import psycopg_pool
import trio

from exchange.errors import ServiceUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

CONNECT_TIMEOUT_S = 5
POOL_TIMEOUT_S = 3.0
# Errors that mean "the server or the connection is gone", not "this statement is wrong".
_CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError)


class DedicatedConnection:
    """One autocommit connection used by one task; ``setup(conn)`` runs after each connect."""

    def __init__(
        self, url: str, *, setup: Callable[[psycopg.Connection], None] | None = None
    ) -> None:
        self._url = url
        self._setup = setup
        self._conn: psycopg.Connection | None = None
        self._limiter = trio.CapacityLimiter(1)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` in a worker thread.

        Raises:
            ServiceUnavailable: PostgreSQL cannot be reached or the connection broke (the
                connection is dropped; the next call reconnects).
        """
        return await trio.to_thread.run_sync(self._call, fn, args, limiter=self._limiter)

    def _call(self, fn: Callable[..., T], args: tuple) -> T:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(
                    self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
                )
                if self._setup is not None:
                    self._setup(self._conn)
            return fn(self._conn, *args)
        except _CONNECTION_ERRORS as exc:
            self._close_now()
            raise ServiceUnavailable(f"PostgreSQL unavailable: {exc}") from exc

    def _close_now(self) -> None:
        if self._conn is not None:
            # A connection that is already broken may fail to close.
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    async def aclose(self) -> None:
        await trio.to_thread.run_sync(self._close_now, limiter=self._limiter)


class PooledConnections:
    """A ``ConnectionPool`` of autocommit connections for short read-only calls."""

    def __init__(self, url: str, *, max_size: int = 4, timeout_s: float = POOL_TIMEOUT_S) -> None:
        self._timeout_s = timeout_s
        self._pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
            open=False,
            name="history",
        )
        self._limiter = trio.CapacityLimiter(max_size)

    async def open(self) -> None:
        """Start the pool; it connects in the background, so a server that is down is fine."""
        await trio.to_thread.run_sync(lambda: self._pool.open(wait=False))

    async def aclose(self) -> None:
        await trio.to_thread.run_sync(self._pool.close)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` on a pooled connection in a worker thread; ``fn`` must only read.

        Raises:
            ServiceUnavailable: no working connection within the pool timeout.
        """
        return await trio.to_thread.run_sync(self._call, fn, args, limiter=self._limiter)

    def _call(self, fn: Callable[..., T], args: tuple) -> T:
        # A pooled connection may have died with a server restart since it was last used; the
        # pool discards it on return, so one retry gets a fresh one. Reads are safe to repeat.
        for attempt in (1, 2):
            try:
                with self._pool.connection(timeout=self._timeout_s) as conn:
                    return fn(conn, *args)
            except psycopg_pool.PoolTimeout as exc:
                raise ServiceUnavailable(f"PostgreSQL unavailable: {exc}") from exc
            except _CONNECTION_ERRORS as exc:
                if attempt == 2:
                    raise ServiceUnavailable(f"PostgreSQL unavailable: {exc}") from exc
                log.info("retrying a read on a fresh connection: %s", exc)
        raise AssertionError("unreachable")
