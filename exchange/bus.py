"""Every Redis name the programs share, and the thread-bridged Redis client for trio.

How the programs talk (all names below are defined here and nowhere else)::

    api ──XADD──► exchange:commands ──XREAD──► engine ──one MULTI/EXEC per batch──┐
    api ──XADD──► exchange:queries  ──XREAD──►        │                           │
    api ◄─XREAD── exchange:replies:<instance> ◄───────┤ replies, by request id    │
    db  ◄─XREADGROUP─ exchange:events ◄───────────────┤ one entry per batch       │
    ws  ◄─SUBSCRIBE── exchange:md:<symbol>, exchange:user:<user_id> ◄─ PUBLISH ───┘
                      exchange:engine:heartbeat, :flushed, :snapshots, :snapshot:<id>

A command or query entry has three fields: ``body`` (``codec.encode(record)``), ``reply_to`` (the
API instance id; absent means nobody waits) and ``req`` (the request id, unique per instance).
The command stream is the durable log: its entry id orders commands and its millisecond part is
the command's timestamp. The engine trims it only below its oldest kept snapshot.

redis-py's blocking client runs in ``trio.to_thread`` workers. Threads cannot be cancelled, so
every blocking call is short (XREAD BLOCK of tens of milliseconds) and the trio side stays
responsive. :class:`RedisBridge` is the only place that turns redis-py's connection errors into
:class:`~exchange.errors.ServiceUnavailable`; :class:`Subscriber` is its pub/sub counterpart.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import redis
import trio
from redis.backoff import NoBackoff
from redis.retry import Retry

from exchange.errors import ServiceUnavailable

log = logging.getLogger(__name__)

# --- names -------------------------------------------------------------------------------------

COMMAND_STREAM = "exchange:commands"
QUERY_STREAM = "exchange:queries"
EVENT_STREAM = "exchange:events"
HEARTBEAT_KEY = "exchange:engine:heartbeat"
# The id of the last command whose replies, events and publishes are in Redis (see service.py).
FLUSHED_KEY = "exchange:engine:flushed"
SNAPSHOT_INDEX_KEY = "exchange:engine:snapshots"
SNAPSHOT_KEY_PREFIX = "exchange:engine:snapshot:"
REPLY_STREAM_PREFIX = "exchange:replies:"
MARKET_CHANNEL_PREFIX = "exchange:md:"
USER_CHANNEL_PREFIX = "exchange:user:"
# Users, API keys and ED25519 keys (exchange.credentials lays out the keys under it).
CREDENTIALS_PREFIX = "exchange:credentials:"

# Fields of command and query entries, and of event entries.
BODY_FIELD = b"body"
REPLY_TO_FIELD = b"reply_to"
REQUEST_ID_FIELD = b"req"
EVENTS_FIELD = b"events"

# Queries are not a log: keep only the recent ones (approximate trimming is cheap).
QUERY_STREAM_MAXLEN = 10_000
# Replies older than this are useless (every waiter has timed out); reply streams are trimmed to
# it and expire after it when their API instance is gone.
REPLY_TTL_MS = 60_000
# The engine refreshes its heartbeat at least every second; the key expires after this, so a
# missing key means "no engine".
HEARTBEAT_TTL_MS = 3_000


def market_channel(symbol: str) -> str:
    """Pub/sub channel of a market's depth and trade events."""
    return MARKET_CHANNEL_PREFIX + symbol


def user_channel(user_id: str) -> str:
    """Pub/sub channel of one user's order and balance events."""
    return USER_CHANNEL_PREFIX + user_id


def reply_stream(instance_id: str) -> str:
    """The stream where the engine answers one API instance."""
    return REPLY_STREAM_PREFIX + instance_id


def snapshot_key(log_id: str) -> str:
    """The key holding the snapshot taken after command ``log_id``."""
    return SNAPSHOT_KEY_PREFIX + log_id


def parse_id(entry_id: bytes | str) -> tuple[int, int]:
    """A stream id ``b"1700000000000-3"`` as ``(ms, sequence)``, which orders like the stream."""
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode()
    ms, _, sequence = entry_id.partition("-")
    return int(ms), int(sequence or 0)


def id_ms(entry_id: bytes) -> int:
    """The millisecond part of a stream id: the entry's timestamp."""
    return int(entry_id[: entry_id.index(b"-")])


def backoff_delays(
    first_s: float = 0.05, max_s: float = 2.0, factor: float = 2.0
) -> Iterator[float]:
    """Delays between reconnection attempts: ``first_s``, doubling, capped at ``max_s``.

    No jitter: one engine and a few API instances do not stampede, and exact delays keep
    MockClock tests exact.
    """
    delay = first_s
    while True:
        yield delay
        delay = min(delay * factor, max_s)


# --- the client --------------------------------------------------------------------------------

DEFAULT_THREADS = 8
SOCKET_TIMEOUT_S = 5.0  # must exceed every XREAD BLOCK we issue
CONNECT_TIMEOUT_S = 1.0


def _client(url: str) -> redis.Redis:
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
        self.client = _client(url)
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


# --- pub/sub -----------------------------------------------------------------------------------

SUBSCRIBER_BUFFER = 1_000
_POLL_S = 0.05
_DELIVER_MAX = 256


class Subscriber:
    """Messages of dynamically chosen pub/sub channels, delivered into trio.

    One thread owns the redis-py ``PubSub`` connection (which is not thread-safe): it applies
    queued (un)subscriptions between short ``get_message`` polls and hands messages to trio in
    batches through a bounded memory channel, so a slow consumer slows the thread, not Redis, until
    Redis's own output limit drops us. After a lost connection it reconnects with back-off and
    resubscribes; messages published meanwhile are lost (pub/sub keeps nothing), so
    :attr:`reconnects` counts those gaps for callers that must resynchronise.

    Use :func:`open_subscriber`; iterate it (or :meth:`receive`) for ``(channel, data)`` pairs.
    """

    def __init__(self, url: str, *, buffer: int = SUBSCRIBER_BUFFER) -> None:
        self.url = url
        self.reconnects = 0
        self._ops: queue.SimpleQueue[tuple[str, list[bytes], trio.Event]] = queue.SimpleQueue()
        self._send, self._receive = trio.open_memory_channel[tuple[str, bytes]](buffer)
        self._closed = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None

    async def subscribe(self, *channels: str) -> None:
        """Subscribe; returns once Redis has confirmed, so later publishes are not missed.
        While Redis is unreachable this waits for the reconnection (bound it with a timeout)."""
        await self._request("subscribe", channels)

    async def unsubscribe(self, *channels: str) -> None:
        """Unsubscribe; returns once Redis has confirmed."""
        await self._request("unsubscribe", channels)

    async def receive(self) -> tuple[str, bytes]:
        """The next ``(channel, data)`` message."""
        return await self._receive.receive()

    def receive_ready(self) -> list[tuple[str, bytes]]:
        """The messages already delivered, without waiting (none: an empty list)."""
        ready = []
        while True:
            try:
                ready.append(self._receive.receive_nowait())
            except trio.WouldBlock:
                return ready

    def __aiter__(self) -> AsyncIterator[tuple[str, bytes]]:
        return self._receive.__aiter__()

    async def _request(self, kind: str, channels: tuple[str, ...]) -> None:
        if not channels:
            return
        done = trio.Event()
        self._ops.put((kind, [channel.encode() for channel in channels], done))
        await done.wait()

    # -- the thread ---------------------------------------------------------------------------

    async def _run(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        await trio.to_thread.run_sync(self._thread_main)

    def _thread_main(self) -> None:
        client = _client(self.url)
        channels: set[bytes] = set()
        # Confirmations Redis still owes us, per (kind, channel), each with the op waiting for it.
        waiting: dict[tuple[str, bytes], list[list]] = {}
        delays: Iterator[float] | None = None
        pubsub = None
        try:
            while not self._closed.is_set():
                try:
                    if pubsub is None:
                        pubsub = client.pubsub()
                        if channels:
                            pubsub.subscribe(*channels)
                        self._forget_unsubscribes(waiting)
                    self._apply_ops(pubsub, channels, waiting)
                    batch = self._poll(pubsub, waiting)
                    delays = None
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    if pubsub is not None:
                        with contextlib.suppress(Exception):
                            pubsub.close()
                        pubsub = None
                        self.reconnects += 1
                    if delays is None:
                        log.warning("pub/sub connection lost (%s); reconnecting", exc)
                        delays = backoff_delays()
                    self._closed.wait(next(delays))
                    continue
                if batch and not self._deliver(batch):
                    return
        finally:
            if pubsub is not None:
                with contextlib.suppress(Exception):
                    pubsub.close()
            client.close()

    def _apply_ops(self, pubsub: Any, channels: set[bytes], waiting: dict) -> None:
        while True:
            try:
                kind, names, done = self._ops.get_nowait()
            except queue.Empty:
                return
            op = [len(names), done]
            for name in names:
                waiting.setdefault((kind, name), []).append(op)
            if kind == "subscribe":
                channels.update(names)
                pubsub.subscribe(*names)
            else:
                channels.difference_update(names)
                pubsub.unsubscribe(*names)

    def _forget_unsubscribes(self, waiting: dict) -> None:
        """A new connection is subscribed to nothing it was not asked to: unsubscriptions still
        waiting for a confirmation from the old one are done."""
        for key in [key for key in waiting if key[0] == "unsubscribe"]:
            for op in waiting.pop(key):
                op[0] -= 1
                if op[0] == 0:
                    self._call_trio(op[1].set)

    def _poll(self, pubsub: Any, waiting: dict) -> list[tuple[str, bytes]]:
        batch: list[tuple[str, bytes]] = []
        timeout = _POLL_S
        while len(batch) < _DELIVER_MAX:
            message = pubsub.get_message(timeout=timeout)
            if message is None:
                break
            timeout = 0.0  # drain what is already here, then deliver
            kind = message["type"]
            if kind == "message":
                batch.append((message["channel"].decode(), message["data"]))
            elif kind in ("subscribe", "unsubscribe"):
                ops = waiting.get((kind, message["channel"]))
                if ops:
                    op = ops.pop(0)
                    if not ops:
                        del waiting[(kind, message["channel"])]
                    op[0] -= 1
                    if op[0] == 0:
                        self._call_trio(op[1].set)
        return batch

    def _call_trio(self, fn: Callable[[], object]) -> None:
        with contextlib.suppress(trio.RunFinishedError):
            trio.from_thread.run_sync(fn, trio_token=self._token)

    def _deliver(self, batch: list[tuple[str, bytes]]) -> bool:
        """Hand a batch to trio, waiting while the channel is full; False once closed."""

        async def send_all() -> bool:
            try:
                for item in batch:
                    await self._send.send(item)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return False
            return True

        try:
            return trio.from_thread.run(send_all, trio_token=self._token)
        except (trio.RunFinishedError, trio.Cancelled):
            return False


@contextlib.asynccontextmanager
async def open_subscriber(
    url: str, *, buffer: int = SUBSCRIBER_BUFFER
) -> AsyncIterator[Subscriber]:
    """A running :class:`Subscriber`; its thread stops (within ~50 ms) when the block exits."""
    subscriber = Subscriber(url, buffer=buffer)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(subscriber._run)
        try:
            yield subscriber
        finally:
            subscriber._closed.set()
            # Unblock a delivery waiting on a full channel; the thread then sees _closed.
            subscriber._receive.close()
