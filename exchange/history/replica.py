"""Reads routed to a PostgreSQL read replica while it keeps up, else to the primary.

:class:`ReadRouter` has the ``run(fn, *args)`` of :class:`~exchange.history.pg.PooledConnections`,
so every read of :class:`~exchange.history.queries.HistoryQueries` (trades, klines, tickers,
orders, fills, and whatever read is added there later) is routed without knowing it is: the
routing is in the connections, not in each query. The writer and the migrator never come here;
they connect to ``DATABASE_URL`` only.

A watcher task (:meth:`ReadRouter.watch`) checks the replica every :data:`CHECK_INTERVAL_S`
(:mod:`exchange.history.replica_lag` says how the lag is measured). While the replica is within
``max_lag_s`` and answers, reads go to it; otherwise to the primary, until a later check finds it
caught up. A read that fails on the replica (it went down between two checks) is retried once on
the primary at once, and the replica is taken out of service until the next check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
import trio

from exchange.errors import ServiceUnavailable
from exchange.history import statements
from exchange.history.pg import PooledConnections
from exchange.history.replica_lag import DOWN, LagTracker, ReplicaState, judge

log = logging.getLogger(__name__)

T = TypeVar("T")

CHECK_INTERVAL_S = 0.5


def _primary_position(conn: psycopg.Connection) -> int:
    return int(conn.execute(statements.PRIMARY_WAL_POSITION).fetchone()[0])


def _replica_position(conn: psycopg.Connection) -> tuple[bool, int]:
    """Whether the server is a standby, and the WAL position it has replayed."""
    standby, position = conn.execute(statements.REPLICA_WAL_POSITION).fetchone()
    return bool(standby), int(position or 0)


class ReadRouter:
    """Read calls to ``replica`` (when given and fresh) or ``primary``; see the module doc.

    ``on_state(state)`` is called after every check (the API's Prometheus gauges).
    """

    def __init__(
        self,
        primary: PooledConnections,
        replica: PooledConnections | None = None,
        *,
        max_lag_s: float = 5.0,
        on_state: Callable[[ReplicaState], None] | None = None,
    ) -> None:
        self.primary = primary
        self.replica = replica
        self.max_lag_s = max_lag_s
        self.on_state = on_state
        # Until the first check, the primary serves: an unchecked replica may be far behind.
        self.state: ReplicaState | None = (
            None if replica is None else ReplicaState(DOWN, None, "not checked yet")
        )
        self._tracker = LagTracker()

    async def open(self) -> None:
        await self.primary.open()
        if self.replica is not None:
            await self.replica.open()

    async def aclose(self) -> None:
        await self.primary.aclose()
        if self.replica is not None:
            await self.replica.aclose()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` on the replica when it serves reads, else on the primary."""
        if self.replica is not None and self.state is not None and self.state.serves_reads:
            try:
                return await self.replica.run(fn, *args)
            except ServiceUnavailable as exc:
                self._set(judge(None, self.max_lag_s, f"read failed: {exc}"))
        return await self.primary.run(fn, *args)

    async def check(self) -> ReplicaState:
        """Measure the replica once and route by the result."""
        assert self.replica is not None
        try:
            primary_position: int | None = await self.primary.run(_primary_position)
        except ServiceUnavailable:
            primary_position = None
        try:
            standby, replica_position = await self.replica.run(_replica_position)
        except ServiceUnavailable as exc:
            self._tracker.reset()
            return self._set(judge(None, self.max_lag_s, f"unreachable ({exc})"))
        if not standby:
            return self._set(judge(None, self.max_lag_s, "not a standby (promoted?)"))
        lag_s = None
        if primary_position is not None:
            lag_s = self._tracker.observe(primary_position, replica_position, trio.current_time())
        return self._set(judge(lag_s, self.max_lag_s))

    async def watch(self) -> None:
        """Check the replica until cancelled (nothing to do without one)."""
        if self.replica is None:
            return
        while True:
            await self.check()
            await trio.sleep(CHECK_INTERVAL_S)

    def _set(self, state: ReplicaState) -> ReplicaState:
        before, self.state = self.state, state
        if before is None or before.serves_reads != state.serves_reads:
            if state.serves_reads:
                log.info("history reads from the replica (lag %s s)", state.lag_s)
            else:
                log.warning("history reads from the primary: replica %s", state.describe())
        if self.on_state is not None:
            self.on_state(state)
        return state
