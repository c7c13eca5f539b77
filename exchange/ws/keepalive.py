"""Heartbeat: ping every 20 s, give up on a client that stops answering.

Kept apart from the connection so the timers run under ``MockClock`` with a scripted ``ping``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

PING_INTERVAL_S = 20.0
PONG_TIMEOUT_S = 20.0


async def keep_alive(
    ping: Callable[[], Awaitable[None]],
    *,
    interval_s: float = PING_INTERVAL_S,
    timeout_s: float = PONG_TIMEOUT_S,
) -> None:
    """Ping every ``interval_s``; return once a ping is unanswered for ``timeout_s``.

    Returning means "this peer is gone": the caller closes the connection. Errors of ``ping``
    (e.g. the connection closed) propagate.
    """
    while True:
        await trio.sleep(interval_s)
        with trio.move_on_after(timeout_s) as waiting:
            await ping()
        if waiting.cancelled_caught:
            return
