"""Rate limits shared by every API and ws process: local buckets, reconciled through Redis.

A request is checked against its process's own :class:`~exchange.ratelimit.TokenBucketLimiter`
(no round trip on the hot path). Every :data:`SYNC_S` each process publishes what its keys
spent since the last publish on :data:`~exchange.names.RATE_LIMIT_CHANNEL`, and debits from its
own buckets what the other processes published. So a user's REST requests, on any API worker,
and their WebSocket requests, on any ws process, draw on one budget; what the others spent in
the last interval is all one process can not yet know (a burst across P processes may overdraw
by at most that). The alternative, a Redis counter checked per request, is exact but costs a
round trip on every request, and the WebSocket's per-message path exists to be cheap.

Pub/sub keeps nothing: while Redis is down each process limits alone, as if unshared — limits
fail open, never closed, and never block a request on Redis.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable

import orjson
import trio

from exchange.bus import RedisBridge
from exchange.errors import ServiceUnavailable
from exchange.names import RATE_LIMIT_CHANNEL
from exchange.pubsub import open_subscriber
from exchange.ratelimit import TokenBucketLimiter
from exchange.settings import Settings

log = logging.getLogger(__name__)

SYNC_S = 0.1


class SharedLimiter:
    """A :class:`TokenBucketLimiter` that records what it granted, to be published, and takes
    what other processes granted (:meth:`absorb`)."""

    def __init__(self, limiter: TokenBucketLimiter) -> None:
        self.limiter = limiter
        self.origin = secrets.token_hex(8)  # this process: its own messages come back too
        self._spent: dict[str, float] = {}

    def take(self, key: str, now: float, cost: float = 1.0) -> float:
        wait_s = self.limiter.take(key, now, cost)
        if wait_s == 0.0 and cost > 0 and self.limiter.rate_per_s > 0:
            self._spent[key] = self._spent.get(key, 0.0) + cost
        return wait_s

    def spent_message(self) -> bytes | None:
        """What was granted since the last call, as a message (None when nothing was)."""
        if not self._spent:
            return None
        spent, self._spent = self._spent, {}
        return orjson.dumps({"from": self.origin, "spent": spent})

    def absorb(self, message: bytes, now: float) -> None:
        """Debit what another process granted (its message); our own and malformed ones are
        ignored."""
        try:
            data = orjson.loads(message)
            if data["from"] == self.origin:
                return
            for key, cost in data["spent"].items():
                self.limiter.debit(str(key), now, float(cost))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            log.warning("malformed rate-limit message ignored")


async def share(
    limiter: SharedLimiter,
    redis_url: str,
    bus: RedisBridge,
    *,
    clock: Callable[[], float] = trio.current_time,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Publish ``limiter``'s spending every :data:`SYNC_S` and absorb the others'; runs until
    cancelled (reports readiness once subscribed)."""
    if limiter.limiter.rate_per_s <= 0:
        task_status.started()
        await trio.sleep_forever()
    async with open_subscriber(redis_url) as subscriber, trio.open_nursery() as nursery:
        await subscriber.subscribe(RATE_LIMIT_CHANNEL)

        async def absorb_all() -> None:
            async for _channel, message in subscriber:
                limiter.absorb(message, clock())

        nursery.start_soon(absorb_all)
        task_status.started()
        while True:
            await trio.sleep(SYNC_S)
            message = limiter.spent_message()
            if message is not None:
                with contextlib.suppress(ServiceUnavailable):  # unshared until Redis is back
                    await bus.call(bus.client.publish, RATE_LIMIT_CHANNEL, message)


def limiters(settings: Settings) -> tuple[SharedLimiter, TokenBucketLimiter]:
    """The private (per key or user, shared: run :func:`share` on it) and public (per IP, per
    process) limiters every API and ws process builds from its settings."""
    private = TokenBucketLimiter(
        settings.rate_limit_private_per_s, settings.rate_limit_private_burst
    )
    public = TokenBucketLimiter(settings.rate_limit_public_per_s, settings.rate_limit_public_burst)
    return SharedLimiter(private), public
