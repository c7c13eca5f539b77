"""Pub/sub for trio: one thread owns the redis-py ``PubSub`` connection, trio gets the messages.

The channels are :mod:`exchange.names`' (``market_channel``, ``user_channel``); the engine
publishes one message per batch and channel. Connection errors never reach the trio side: the
thread reconnects with :mod:`exchange.retry`'s back-off and counts the gap in
:attr:`Subscriber.reconnects`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis
import trio

from exchange.bus import redis_client
from exchange.retry import retry_blocking

log = logging.getLogger(__name__)

SUBSCRIBER_BUFFER = 1_000
_POLL_S = 0.05
_DELIVER_MAX = 256
_CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError)


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
        client = redis_client(self.url)
        channels: set[bytes] = set()
        # Confirmations Redis still owes us, per (kind, channel), each with the op waiting for it.
        waiting: dict[tuple[str, bytes], list[list]] = {}
        pubsub = None

        def poll() -> list[tuple[str, bytes]]:
            """Apply queued (un)subscriptions and take what arrived, (re)connecting first."""
            nonlocal pubsub
            if self._closed.is_set():
                return []
            try:
                if pubsub is None:
                    pubsub = client.pubsub()
                    if channels:
                        pubsub.subscribe(*channels)
                    self._forget_unsubscribes(waiting)
                self._apply_ops(pubsub, channels, waiting)
                return self._poll(pubsub, waiting)
            except _CONNECTION_ERRORS:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        pubsub.close()
                    pubsub = None
                    self.reconnects += 1
                raise

        def lost(exc: BaseException, _delay: float, failures: int) -> None:
            if failures == 1:
                log.warning("pub/sub connection lost (%s); reconnecting", exc)

        try:
            while not self._closed.is_set():
                # A closing subscriber cuts the back-off short (the Event's wait returns).
                batch = retry_blocking(
                    poll, retry_on=_CONNECTION_ERRORS, on_failure=lost, sleep=self._closed.wait
                )
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
