"""The thread-bridged Redis client for trio, and the only place redis-py's errors become ours.

redis-py's blocking client runs in ``trio.to_thread`` workers. Threads cannot be cancelled, so
every blocking call is short (XREAD BLOCK of tens of milliseconds) and the trio side stays
responsive. :class:`RedisBridge` is the only place that turns redis-py's connection errors into
:class:`~exchange.errors.ServiceUnavailable`; :class:`exchange.pubsub.Subscriber` is its pub/sub
counterpart. The names of what the programs share in Redis are :mod:`exchange.names`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import redis
import trio
from redis.backoff import NoBackoff
from redis.retry import Retry

from exchange.errors import ServiceUnavailable

DEFAULT_THREADS = 8
SOCKET_TIMEOUT_S = 5.0  # must exceed every XREAD BLOCK we issue
CONNECT_TIMEOUT_S = 1.0


def redis_client(url: str) -> redis.Redis:
    # No retries inside redis-py: our callers own the retry policy (and its clock).
    return redis.Redis.from_url(
        url,
        decode_responses=False,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )


class RedisBridge:
    """redis-py's blocking client, called from trio through worker threads.

    Each call takes a token of this bridge's own :class:`trio.CapacityLimiter`, so one program's
    Redis traffic cannot starve another's threads. Raises :class:`ServiceUnavailable` when Redis
    cannot be reached or does not answer in time (the caller decides whether to retry).
    """

    def __init__(self, url: str, *, max_threads: int = DEFAULT_THREADS) -> None:
        self.url = url
        self.client = redis_client(url)
        self._limiter = trio.CapacityLimiter(max_threads)

    async def call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """Run ``fn(*args, **kw)`` (a blocking redis-py call) in a worker thread."""
        if kw:
            fn = functools.partial(fn, **kw)
        try:
            return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise ServiceUnavailable(f"redis: {exc}") from exc

    async def pipeline(
        self, build: Callable[[redis.client.Pipeline], object], *, transaction: bool = False
    ) -> list[Any]:
        """Queue commands with ``build(pipe)`` and send them in one round trip.

        With ``transaction=True`` they run as one MULTI/EXEC: all or nothing, even if we crash.
        ``build`` runs in the worker thread, so it may serialise its payloads there.
        """

        def execute() -> list[Any]:
            pipe = self.client.pipeline(transaction=transaction)
            build(pipe)
            return pipe.execute()

        return await self.call(execute)

    async def get(self, key: str) -> bytes | None:
        return await self.call(self.client.get, key)

    async def set(self, key: str, value: bytes, *, px: int | None = None) -> None:
        await self.call(self.client.set, key, value, px=px)

    async def xadd(
        self, stream: str, fields: dict, *, maxlen: int | None = None, minid: str | None = None
    ) -> bytes:
        """Append an entry; ``maxlen``/``minid`` trim approximately. Returns the entry id."""
        return await self.call(self.client.xadd, stream, fields, maxlen=maxlen, minid=minid)

    async def xread(
        self, streams: dict[str, bytes | str], *, count: int, block_ms: int | None = None
    ) -> list:
        """XREAD: ``[[stream, [(id, fields), ...]], ...]``; empty after ``block_ms`` idle."""
        return await self.call(self.client.xread, streams, count=count, block=block_ms) or []

    async def xrange(
        self, stream: str, min: bytes | str = "-", max: bytes | str = "+", count: int | None = None
    ) -> list[tuple[bytes, dict]]:
        """Entries from ``min`` to ``max`` (a ``(`` prefix excludes the bound)."""
        return await self.call(self.client.xrange, stream, min=min, max=max, count=count)

    async def last_id(self, stream: str) -> bytes | None:
        """The id of the stream's newest entry, or None when it is empty or missing."""
        entries = await self.call(self.client.xrevrange, stream, count=1)
        return entries[0][0] if entries else None

    async def ping(self) -> None:
        await self.call(self.client.ping)

    def close(self) -> None:
        """Close idle connections (calls still running finish on theirs)."""
        self.client.close()

    async def __aenter__(self) -> RedisBridge:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
