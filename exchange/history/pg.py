"""psycopg for trio: blocking calls in worker threads, each bounded in time.

This is the one place the programs touch psycopg's connections. Work is a plain function
``fn(conn, *args)`` that runs whole in a ``trio.to_thread`` worker, behind a CapacityLimiter, so
the trio loop never blocks.

Two shapes:

- :class:`DedicatedConnection`: one connection, one call at a time (the writer: its temp tables
  live in its session). It reconnects lazily after a failure.
- :class:`PooledConnections`: a psycopg_pool ``ConnectionPool`` for concurrent read-only queries
  (the API), which retries a read once on a broken connection (e.g. after a server restart).

*Every call ends within its deadline* (``timeout_s``), whatever the server does. A server that
is stopped (SIGSTOP), or a host that froze, still looks alive to the socket: its kernel accepts
connections and acknowledges what is sent, so neither libpq nor TCP ever gives up, and a
``statement_timeout`` is never applied by a server that does not run. A thread blocked on such a
socket cannot be cancelled, so at the deadline the caller leaves the thread behind and shuts the
connection's socket down under it (:class:`_Call`): the thread's psycopg call fails at once,
the connection is dropped (a pool discards it), and no later call waits behind it. The waiting
caller is shielded from cancellation until then, so a transaction that has started either
finishes or is cut off before its caller unwinds: it never runs on unwatched.

Connections also carry TCP keepalives and ``tcp_user_timeout``, which end them when the peer
itself is gone (a cut network, a dead host), and a server-side ``statement_timeout`` equal to the
deadline, so a slow statement we have given up on stops using the server too.

Connection-level failures (server down, restarting, connection lost, no answer in time) are
raised as :class:`~exchange.errors.ServiceUnavailable`; other psycopg errors (a bad statement,
bad data) are bugs and pass through unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import psycopg
import psycopg_pool
import trio

from exchange.errors import ServiceUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

# libpq's connect_timeout is whole seconds, at least this (0 would mean "wait forever").
MIN_CONNECT_TIMEOUT_S = 2
# TCP (libpq parameters): probe a connection idle for 5 s every 2 s and drop it after 3 probes
# go unanswered; drop one whose sent data stays unacknowledged for 20 s. Both catch a vanished
# peer; a stopped server on a live host still acknowledges, which only the call deadline catches.
TCP_OPTIONS = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 20_000,  # ms
}
# A pooled call waits this long at most for a connection (less if its deadline comes first):
# with the server down or refusing, waiting longer seldom helps the caller.
ACQUIRE_TIMEOUT_S = 3.0
# A pool gives up reconnecting after this long and tries afresh on the next request, so after
# an outage it reconnects within seconds rather than after its growing back-off (up to minutes).
POOL_RECONNECT_TIMEOUT_S = 5.0
# The reads' statements, prepared by psycopg once run 5 times, keep one generic plan. On
# TimescaleDB a custom plan is made anew for every run, expanding the continuous aggregate's
# real-time union and the chunks of both its parts (EXPLAIN over 1,000,000 trades: 0.6 ms of
# planning against 0.1 ms on a plain table); a generic plan excludes chunks and reads the
# aggregate's watermark when it runs. Measured (execute and fetch, latest 500 1-minute
# candles): 1.56 → 1.25 ms on TimescaleDB, 0.96 → 0.98 ms on plain PostgreSQL.
READ_PLAN_CACHE_MODE = "force_generic_plan"
# Errors that mean "the server or the connection is gone", not "this statement is wrong"
# (a statement cut off by statement_timeout is an OperationalError too).
_CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError)


def connection_options(
    *, application: str, timeout_s: float, connect_timeout_s: int
) -> dict[str, Any]:
    """psycopg.connect keyword arguments that bound how long a connection can hang."""
    return {
        "autocommit": True,
        "application_name": application,
        "connect_timeout": max(MIN_CONNECT_TIMEOUT_S, int(connect_timeout_s)),
        **TCP_OPTIONS,
        "options": f"-c statement_timeout={max(1, int(timeout_s * 1000))}",
    }


class _Call:
    """One call's deadline, shared by the caller and its worker thread.

    The thread declares the connection it works on (:meth:`using`); :meth:`abort` (the caller, at
    the deadline) shuts that connection's socket down, which fails whatever the thread is blocked
    in. Both under one lock, so a connection is only shut down while this call still holds it.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None
        self.aborted = False

    def remaining_s(self) -> float:
        return self.deadline - time.monotonic()

    @contextlib.contextmanager
    def using(self, conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
        with self._lock:
            if self.aborted:
                raise self.expired()
            self._conn = conn
        try:
            yield conn
        finally:
            with self._lock:
                self._conn = None

    def abort(self) -> None:
        with self._lock:
            self.aborted = True
            if self._conn is not None and not self._conn.closed:
                _shut_down(self._conn)

    def expired(self) -> ServiceUnavailable:
        return ServiceUnavailable(f"PostgreSQL did not answer within {self.timeout_s:g}s")


def _shut_down(conn: psycopg.Connection) -> None:
    """Shut the connection's socket down (both ways): a thread blocked on it wakes with an error.

    The socket is shut down through a duplicate of its descriptor, which libpq keeps owning and
    closes as usual; shutdown acts on the socket itself, not on one descriptor.
    """
    try:
        fd = os.dup(conn.fileno())
    except (OSError, psycopg.Error):
        return
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        os.close(fd)
        return
    with sock, contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


async def _run_bounded(
    limiter: trio.CapacityLimiter, timeout_s: float, work: Callable[..., T], *args: Any
) -> T:
    """``work(call, *args)`` in a worker thread, finished or abandoned (its connection shut down)
    ``timeout_s`` from now, waiting for the limiter included; see the module doc."""
    call = _Call(timeout_s)
    with trio.CancelScope(shield=True), trio.move_on_after(timeout_s):
        return await trio.to_thread.run_sync(
            work, call, *args, limiter=limiter, abandon_on_cancel=True
        )
    call.abort()
    raise call.expired()


class DedicatedConnection:
    """One autocommit connection used by one task; ``setup(conn)`` runs after each connect.

    Each call (connecting included) ends within ``timeout_s``.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float,
        application: str,
        connect_timeout_s: int,
        setup: Callable[[psycopg.Connection], None] | None = None,
    ) -> None:
        self._url = url
        self._timeout_s = timeout_s
        self._options = connection_options(
            application=application, timeout_s=timeout_s, connect_timeout_s=connect_timeout_s
        )
        self._setup = setup
        self._conn: psycopg.Connection | None = None
        self._limiter = trio.CapacityLimiter(1)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` in a worker thread.

        Raises:
            ServiceUnavailable: PostgreSQL cannot be reached, the connection broke or did not
                answer in time (the connection is dropped; the next call reconnects).
        """
        return await _run_bounded(self._limiter, self._timeout_s, self._call, fn, args)

    def _call(self, call: _Call, fn: Callable[..., T], args: tuple) -> T:
        try:
            if self._conn is None or self._conn.closed:
                conn = psycopg.connect(self._url, **self._options)
                self._conn = conn
                with call.using(conn):
                    if self._setup is not None:
                        self._setup(conn)
            with call.using(self._conn) as conn:
                return fn(conn, *args)
        except _CONNECTION_ERRORS as exc:
            self._close_now()
            if call.aborted:
                raise call.expired() from exc
            raise ServiceUnavailable(f"PostgreSQL unavailable: {exc}") from exc
        except ServiceUnavailable:
            self._close_now()
            raise

    def _close_now(self) -> None:
        if self._conn is not None:
            # A connection that is already broken may fail to close.
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    async def aclose(self) -> None:
        await trio.to_thread.run_sync(self._close_now, limiter=self._limiter)


class PooledConnections:
    """A ``ConnectionPool`` of autocommit connections for short read-only calls.

    Each call, waiting for a connection included, ends within ``timeout_s``; it waits at most
    :data:`ACQUIRE_TIMEOUT_S` of that for a connection.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float,
        max_size: int,
        application: str,
        connect_timeout_s: int,
    ) -> None:
        self._timeout_s = timeout_s
        options = connection_options(
            application=application, timeout_s=timeout_s, connect_timeout_s=connect_timeout_s
        )
        options["options"] += f" -c plan_cache_mode={READ_PLAN_CACHE_MODE}"
        self._pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            kwargs=options,
            open=False,
            name="history",
            reconnect_timeout=POOL_RECONNECT_TIMEOUT_S,
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
            ServiceUnavailable: no working connection, or no answer, within the timeout.
        """
        return await _run_bounded(self._limiter, self._timeout_s, self._call, fn, args)

    def _call(self, call: _Call, fn: Callable[..., T], args: tuple) -> T:
        # A pooled connection may have died with a server restart since it was last used; the
        # pool discards it on return, so one retry gets a fresh one. Reads are safe to repeat.
        for attempt in (1, 2):
            wait_s = max(0.0, min(ACQUIRE_TIMEOUT_S, call.remaining_s()))
            try:
                with (
                    self._pool.connection(timeout=wait_s) as pooled,
                    call.using(pooled) as conn,
                ):
                    return fn(conn, *args)
            except psycopg_pool.PoolTimeout as exc:
                raise ServiceUnavailable(f"PostgreSQL unavailable: {exc}") from exc
            except _CONNECTION_ERRORS as exc:
                if call.aborted:
                    raise call.expired() from exc
                if attempt == 2:
                    raise ServiceUnavailable(f"PostgreSQL unavailable: {exc}") from exc
                log.info("retrying a read on a fresh connection: %s", exc)
        raise AssertionError("unreachable")
