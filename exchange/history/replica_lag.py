"""How far a read replica is behind its primary, and whether reads should go to it (pure).

The lag is measured as *time since the replica first missed a WAL position the primary had*:
every check reads the primary's current WAL position, then the replica's replayed position.
When the replica has replayed everything the primary had, it is not behind (lag 0). Otherwise
the lag is the age of the oldest primary position seen that the replica has not replayed yet.
So the figure is an upper bound on how stale a read from the replica can be, within one check
interval, and it needs nothing on the servers but two functions every PostgreSQL has.

Why not ``now() - pg_last_xact_replay_timestamp()`` on the replica alone, the usual recipe: after
a quiet spell it reports the whole quiet spell as lag the moment a new write arrives (the last
replayed commit is old), and a replica whose WAL receiver lost the primary reports no lag at all
(it has replayed all it received). Comparing with the primary has neither blind spot.
"""

from __future__ import annotations

import math
from collections import deque

import attrs

# Reads go to the replica, or to the primary because the replica is behind or unreachable.
OK, LAGGING, DOWN = "ok", "lagging", "down"


@attrs.frozen
class ReplicaState:
    """The replica as the last check saw it. ``lag_s`` is None when it could not be measured
    (either server unreachable); ``detail`` says why reads left it."""

    status: str = OK
    lag_s: float | None = 0.0
    detail: str = ""

    @property
    def serves_reads(self) -> bool:
        return self.status == OK

    def describe(self) -> str:
        """For ``/readyz``: ``ok``, or what happened and that the primary serves reads."""
        if self.status == OK:
            return OK
        return f"{self.status}: {self.detail}; history reads from the primary"


class LagTracker:
    """Turns (primary position, replica position) observations into a lag in seconds."""

    def __init__(self) -> None:
        # (position, first seen at) of primary positions the replica had not replayed, oldest first
        self._unreplayed: deque[tuple[int, float]] = deque()
        self._checked = False

    def observe(self, primary_position: int, replica_position: int, now: float) -> float:
        """Record one check (primary read first, then the replica); return the lag in seconds."""
        if not self._checked:
            # Behind at the first check: since when is unknown, so as long ago as can be.
            self._checked = True
            now_seen = -math.inf
        else:
            now_seen = now
        if not self._unreplayed or self._unreplayed[-1][0] < primary_position:
            self._unreplayed.append((primary_position, now_seen))
        while self._unreplayed and self._unreplayed[0][0] <= replica_position:
            self._unreplayed.popleft()
        return now - self._unreplayed[0][1] if self._unreplayed else 0.0  # inf: since the start

    def reset(self) -> None:
        """Forget what was seen (the replica went away: its next position starts afresh)."""
        self._unreplayed.clear()
        self._checked = False


def judge(lag_s: float | None, max_lag_s: float, error: str | None = None) -> ReplicaState:
    """Whether the replica may serve reads: it answers and its lag is within ``max_lag_s``.

    A lag that cannot be measured because the *primary* is unreachable (``lag_s`` None, no
    ``error``) keeps the replica serving: stale history beats none, and the primary would fail.
    """
    if error is not None:
        return ReplicaState(DOWN, None, error)
    if lag_s is not None and lag_s > max_lag_s:
        behind = (
            "behind since before the first check" if math.isinf(lag_s) else f"{lag_s:.1f}s behind"
        )
        return ReplicaState(LAGGING, lag_s, f"{behind} (bound {max_lag_s:g}s)")
    return ReplicaState(OK, lag_s)
