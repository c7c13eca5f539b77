"""The API side of the engine: send a command or query, wait for its reply.

    async with open_gateway(settings.redis_url, timeout_s=5.0) as gateway:
        reply = await gateway.submit(PlaceOrder(...))   # an OrderView or a Rejection

A gateway runs three tasks:

- the **sender** drains every request queued since its last round trip and XADDs them in one
  pipeline, so a busy API instance sends hundreds of commands per round trip while an idle one
  sends each at once (no waiting to fill a batch);
- the **reader** follows this instance's reply stream and wakes the waiting callers;
- the **heartbeat poller** reads the engine's heartbeat key twice a second.

Replies come back on a per-instance reply *stream* (``exchange:replies:<instance>``) rather than
a pub/sub channel: the engine writes each batch's replies for one instance as a single entry, and
a reader that lost its connection for a moment resumes from the last id it saw instead of losing
the replies published meanwhile (pub/sub keeps nothing). Several API instances each read only
their own stream. Request ids carry a random per-gateway prefix, so a restarted instance that
reuses its id never mistakes an old reply for a new one.

Failures are explicit and bounded in time: :class:`ServiceUnavailable` at once when the engine's
heartbeat has expired or Redis refuses the connection (nothing was enqueued; only a connection
that breaks in the middle of sending the XADD leaves that in doubt); :class:`EngineTimeout` after
``timeout_s`` when the command was (perhaps) enqueued but no reply came, so its outcome is
unknown. The gateway never retries a command: a retry could apply it twice.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import orjson
import trio

from exchange import codec
from exchange.bus import RedisBridge
from exchange.errors import EngineTimeout, ServiceUnavailable
from exchange.models import Command, Query, Reply
from exchange.names import (
    BODY_FIELD,
    COMMAND_STREAM,
    HEARTBEAT_KEY,
    QUERY_STREAM,
    QUERY_STREAM_MAXLEN,
    REPLY_TO_FIELD,
    REQUEST_ID_FIELD,
    reply_stream,
)
from exchange.retry import retry

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0
HEARTBEAT_POLL_S = 0.5
# Without a successful poll for this long we cannot vouch for the engine: refuse requests.
HEARTBEAT_STALE_S = 3.0
READ_BLOCK_MS = 50
READ_COUNT = 1_000
SEND_BATCH_MAX = 1_000
OUTBOX_SIZE = 10_000

# Called (in the requesting task) once a request is in the gateway's outbox. A WebSocket
# connection sets it for each request's task and starts the next request only then, so one
# connection's commands reach the log in the order it sent them while their replies overlap.
# A context variable rather than a parameter keeps every surface function and Backend method
# unaware of it.
on_queued: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "on_queued", default=None
)


class _Slot:
    """One request waiting for its reply."""

    __slots__ = ("request_id", "done", "body", "error", "abandoned")

    def __init__(self, request_id: bytes) -> None:
        self.request_id = request_id
        self.done = trio.Event()
        self.body: bytes | None = None
        self.error: Exception | None = None
        self.abandoned = False

    def resolve(self, body: bytes) -> None:
        if not self.done.is_set():
            self.body = body
            self.done.set()

    def fail(self, error: Exception) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()


class Gateway:
    """Submits commands and queries to the engine through Redis; see the module docstring.

    ``bus`` is anything with :class:`RedisBridge`'s ``pipeline``, ``xread``, ``get`` and
    ``last_id`` (tests pass a scripted fake to drive time).
    """

    def __init__(
        self, bus: RedisBridge, *, instance_id: str, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.bus = bus
        self.instance_id = instance_id
        self.timeout_s = timeout_s
        self.reply_stream = reply_stream(instance_id)
        self._instance = instance_id.encode()
        self._prefix = secrets.token_hex(4).encode() + b"."
        self._counter = 0
        self._pending: dict[bytes, _Slot] = {}
        self._outbox_send, self._outbox_receive = trio.open_memory_channel[
            list[tuple[str, bytes, _Slot]]
        ](OUTBOX_SIZE)
        self._heartbeat: dict[str, Any] | None = None
        self._heartbeat_at: float | None = None  # trio time of the last successful poll
        self._reply_position = b"0-0"

    # --- public ------------------------------------------------------------------------------

    async def submit(self, command: Command) -> Reply:
        """Append ``command`` to the log and return the engine's reply.

        Raises ServiceUnavailable (nothing enqueued) or EngineTimeout (outcome unknown).
        """
        return (await self._request([(COMMAND_STREAM, codec.encode(command))]))[0]

    async def submit_many(self, commands: Iterable[Command]) -> list[Reply]:
        """Append several commands in one round trip; replies in the same order.

        Raises like :meth:`submit`; EngineTimeout when any reply is missing at the deadline.
        """
        return await self._request([(COMMAND_STREAM, codec.encode(c)) for c in commands])

    async def query(self, query: Query) -> Reply:
        """Ask the engine a read-only question (not logged). Raises like :meth:`submit`."""
        return (await self._request([(QUERY_STREAM, codec.encode(query))]))[0]

    async def submit_raw(self, body: bytes) -> bytes:
        """:meth:`submit` for an already encoded command; returns the encoded reply."""
        return (await self._request([(COMMAND_STREAM, body)], decode=False))[0]

    def heartbeat(self) -> dict[str, Any] | None:
        """The engine's latest heartbeat (``seq``, ``log_id``, ``lag``, ``ts``), or None when
        there is no live engine or Redis cannot be reached."""
        if self._heartbeat_at is None or self._heartbeat is None:
            return None
        if trio.current_time() - self._heartbeat_at > HEARTBEAT_STALE_S:
            return None
        return self._heartbeat

    # --- requests ----------------------------------------------------------------------------

    async def _request(self, items: list[tuple[str, bytes]], *, decode: bool = True) -> list:
        if not items:
            return []
        if self.heartbeat() is None:
            raise ServiceUnavailable("the engine is not running or Redis cannot be reached")
        slots = []
        for _ in items:
            self._counter += 1
            slot = _Slot(b"%s%x" % (self._prefix, self._counter))
            self._pending[slot.request_id] = slot
            slots.append(slot)
        try:
            with trio.move_on_after(self.timeout_s):
                await self._outbox_send.send(
                    [
                        (stream, body, slot)
                        for (stream, body), slot in zip(items, slots, strict=True)
                    ]
                )
                queued = on_queued.get()
                if queued is not None:
                    on_queued.set(None)  # once per task: a later query is not ordered again
                    queued()
                replies = []
                for slot in slots:
                    await slot.done.wait()
                    if slot.error is not None:
                        raise slot.error
                    replies.append(codec.decode(slot.body) if decode else slot.body)
                return replies
            raise EngineTimeout(f"the engine did not reply within {self.timeout_s}s")
        finally:
            for slot in slots:
                slot.abandoned = True
                self._pending.pop(slot.request_id, None)

    # --- tasks -------------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        """Send what is queued, all of it in one pipeline per round trip."""
        async for first in self._outbox_receive:
            batch = list(first)
            while len(batch) < SEND_BATCH_MAX:
                try:
                    batch.extend(self._outbox_receive.receive_nowait())
                except trio.WouldBlock:
                    break
            # A caller that gave up (timed out or was cancelled) is not enqueued after all.
            batch = [item for item in batch if not item[2].abandoned]
            if not batch:
                continue

            def build(pipe: Any, batch: list = batch, instance: bytes = self._instance) -> None:
                for stream, body, slot in batch:
                    fields = {
                        BODY_FIELD: body,
                        REPLY_TO_FIELD: instance,
                        REQUEST_ID_FIELD: slot.request_id,
                    }
                    if stream == QUERY_STREAM:
                        pipe.xadd(stream, fields, maxlen=QUERY_STREAM_MAXLEN, approximate=True)
                    else:
                        pipe.xadd(stream, fields)

            try:
                await self.bus.pipeline(build)
            except ServiceUnavailable as exc:
                self._heartbeat_at = None  # refuse new requests until a poll succeeds
                for _stream, _body, slot in batch:
                    slot.fail(ServiceUnavailable(str(exc)))

    async def _read_loop(self) -> None:
        """Follow the reply stream; each entry maps request ids to encoded replies."""
        while True:
            response = await retry(
                self._read_replies,
                on_failure=_log_unreadable,
                on_recovery=lambda: log.info("reply stream readable again"),
            )
            pending = self._pending
            for _stream, entries in response:
                for entry_id, fields in entries:
                    self._reply_position = entry_id
                    for request_id, body in fields.items():
                        slot = pending.get(request_id)
                        if slot is not None:
                            slot.resolve(body)

    async def _read_replies(self) -> list:
        return await self.bus.xread(
            {self.reply_stream: self._reply_position}, count=READ_COUNT, block_ms=READ_BLOCK_MS
        )

    async def _poll_heartbeat(self) -> None:
        try:
            raw = await self.bus.get(HEARTBEAT_KEY)
        except ServiceUnavailable:
            self._heartbeat_at = None
            return
        self._heartbeat = orjson.loads(raw) if raw is not None else None
        self._heartbeat_at = trio.current_time()

    async def _heartbeat_loop(self) -> None:
        while True:
            await trio.sleep(HEARTBEAT_POLL_S)
            await self._poll_heartbeat()

    async def _start(self, nursery: trio.Nursery) -> None:
        """Find where the reply stream ends, read the heartbeat, start the tasks."""
        with contextlib.suppress(ServiceUnavailable):
            self._reply_position = await self.bus.last_id(self.reply_stream) or b"0-0"
        await self._poll_heartbeat()
        nursery.start_soon(self._send_loop)
        nursery.start_soon(self._read_loop)
        nursery.start_soon(self._heartbeat_loop)


@contextlib.asynccontextmanager
async def open_gateway(
    redis_url: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    instance_id: str | None = None,
    bus: RedisBridge | None = None,
) -> AsyncIterator[Gateway]:
    """A running :class:`Gateway`; Redis may be down at start (requests then fail fast).

    ``instance_id`` names this API instance's reply stream (default: random). ``bus`` replaces
    the Redis client (tests).
    """
    own_bus = bus is None
    bus = bus if bus is not None else RedisBridge(redis_url)
    gateway = Gateway(bus, instance_id=instance_id or secrets.token_hex(8), timeout_s=timeout_s)
    try:
        async with trio.open_nursery() as nursery:
            await gateway._start(nursery)
            try:
                yield gateway
            finally:
                nursery.cancel_scope.cancel()
    finally:
        if own_bus:
            bus.close()


def _log_unreadable(exc: BaseException, _delay: float, failures: int) -> None:
    if failures == 1:
        log.warning("reply stream unreadable (%s); retrying with back-off", exc)
