"""The engine's command log in Redis: the command and query streams, and the batch outputs.

The only engine module that speaks to Redis besides the snapshot store: reading is one XREAD of
both streams (commands and queries, ``COUNT`` a batch, ``BLOCK`` :data:`READ_BLOCK_MS`), and a
batch's outputs are one MULTI/EXEC (replies, one events entry, one EVAL publishing to every
channel, the flushed mark, the heartbeat), so Redis holds all of a batch's outputs or none (see :mod:`exchange.engine.service`).
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

import orjson
import redis
import trio

from exchange.bus import RedisBridge
from exchange.engine.outputs import BatchOutput
from exchange.engine.ports import Entry, LogInfo, ReadFrom
from exchange.errors import ServiceUnavailable
from exchange.names import (
    COMMAND_STREAM,
    EVENT_STREAM,
    EVENTS_FIELD,
    FLUSHED_KEY,
    HEARTBEAT_KEY,
    HEARTBEAT_TTL_MS,
    QUERY_STREAM,
    REPLY_STREAM_PREFIX,
    REPLY_TTL_MS,
)

READ_BLOCK_MS = 50  # short: a worker thread blocked in XREAD cannot be cancelled

# KEYS are the channels, ARGV their messages, in the same order. Sent whole each time (Redis
# caches it by its digest): EVALSHA would need a NOSCRIPT fallback inside the MULTI/EXEC.
_PUBLISH_ALL = """
for i = 1, #KEYS do
  redis.call('PUBLISH', KEYS[i], ARGV[i])
end
"""

_COMMAND_STREAM = COMMAND_STREAM.encode()
_REPLY_STREAM_PREFIX = REPLY_STREAM_PREFIX.encode()


class RedisLog:
    """The engine's ``CommandLog`` port on a :class:`~exchange.bus.RedisBridge`."""

    def __init__(self, bus: RedisBridge, *, events_maxlen: int = 0) -> None:
        self.bus = bus
        self.events_maxlen = events_maxlen or None

    async def read(
        self, command_after: bytes, query_after: bytes, count: int
    ) -> tuple[list[Entry], list[Entry]]:
        response = await self.bus.xread(
            {QUERY_STREAM: query_after, COMMAND_STREAM: command_after},
            count=count,
            block_ms=READ_BLOCK_MS,
        )
        return _split(response)

    async def read_range(self, after: bytes, until: bytes, count: int) -> list[Entry]:
        return await self.bus.xrange(COMMAND_STREAM, b"(" + after, until, count=count)

    async def query_position(self) -> bytes:
        # A query older than REPLY_TTL_MS has nobody waiting; younger ones (sent while the
        # engine restarted) are answered. Redis's clock, like the stream ids.
        seconds, micros = await self.bus.call(self.bus.client.time)
        return b"%d-0" % max(0, seconds * 1000 + micros // 1000 - REPLY_TTL_MS)

    async def flushed_id(self) -> bytes | None:
        return await self.bus.get(FLUSHED_KEY)

    async def info(self) -> LogInfo | None:
        try:
            data = await self.bus.call(self.bus.client.xinfo_stream, COMMAND_STREAM)
        except redis.ResponseError:
            return None  # no such stream yet
        length = data["length"]
        # entries-added exists from Redis 7.0; without it a trimmed log goes unnoticed.
        return LogInfo(length, data.get("entries-added", length), data["last-generated-id"])

    async def flush(
        self, out: BatchOutput, then_read: ReadFrom | None = None
    ) -> tuple[list[Entry], list[Entry]]:
        events_maxlen = self.events_maxlen

        def build(pipe: Any) -> None:
            if out.replies:
                # Reply entries older than REPLY_TTL_MS are of no use to anyone.
                minid = f"{max(0, out.newest_ms - REPLY_TTL_MS)}-0"
                for instance, replies in out.replies.items():
                    stream = _REPLY_STREAM_PREFIX + instance
                    pipe.xadd(stream, replies, minid=minid, approximate=True)
                    pipe.pexpire(stream, REPLY_TTL_MS)
            if out.events:
                pipe.xadd(
                    EVENT_STREAM,
                    {EVENTS_FIELD: orjson.dumps(out.events)},
                    maxlen=events_maxlen,
                    approximate=True,
                )
            if out.channels:
                # One EVAL publishes to every channel: one command to pack and answer, not one
                # per channel (a batch of 16 orders touches ~20 channels).
                channels = list(out.channels)
                pipe.eval(
                    _PUBLISH_ALL,
                    len(channels),
                    *channels,
                    *[orjson.dumps(events) for events in out.channels.values()],
                )
            if out.last_command_id is not None:
                pipe.set(FLUSHED_KEY, out.last_command_id)
            pipe.set(HEARTBEAT_KEY, orjson.dumps(out.heartbeat), px=HEARTBEAT_TTL_MS)
            if then_read is not None:
                # Inside MULTI/EXEC an XREAD never waits: the next batch, if any, comes back
                # with this one's EXEC, saving a thread hop and a round trip per batch.
                pipe.xread(
                    {QUERY_STREAM: then_read.query_after, COMMAND_STREAM: then_read.command_after},
                    count=then_read.count,
                )

        results = await self.bus.pipeline(build, transaction=True)
        return _split(results[-1] or []) if then_read is not None else ([], [])

    async def clear_heartbeat(self) -> None:
        """Delete the heartbeat on the way out, shielded, at most a second, if Redis answers.

        Gone, not stale: without this, gateways would take a stopped engine's last heartbeat
        for a live one until the key expires, and time out instead of refusing at once.
        """
        with trio.CancelScope(shield=True), trio.move_on_after(1), suppress(ServiceUnavailable):
            await self.bus.call(self.bus.client.delete, HEARTBEAT_KEY)


def _split(response: list) -> tuple[list[Entry], list[Entry]]:
    """An XREAD answer of both streams as (commands, queries)."""
    commands: list[Entry] = []
    queries: list[Entry] = []
    for stream, entries in response:
        if stream == _COMMAND_STREAM:
            commands = entries
        else:
            queries = entries
    return commands, queries
