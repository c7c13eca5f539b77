"""Small scripted stand-ins for Redis, for the tests that run on trio's MockClock.

A worker thread looks idle to the autojump clock, which would then jump past every deadline; so
the timing tests replace the Redis side with these in-memory objects whose only waiting is on
trio's clock. They speak the same small interfaces as the real classes (the engine's
``CommandLog``/``Snapshots`` ports, the slice of ``RedisBridge`` the gateway uses) and can be told
to fail, so back-off and retries are exercised exactly. Everything else is tested on real Redis.
"""

from __future__ import annotations

from typing import Any

import trio

from exchange import codec
from exchange.engine.outputs import BatchOutput
from exchange.engine.ports import LogInfo, ReadFrom
from exchange.engine.redis_log import READ_BLOCK_MS
from exchange.engine.snapshots_store import StoredSnapshot
from exchange.errors import ServiceUnavailable
from exchange.names import BODY_FIELD, REPLY_TO_FIELD, REQUEST_ID_FIELD, parse_id


class Streams:
    """In-memory streams with ids ``<ms>-<n>`` taken from the trio clock; readers wake on adds."""

    def __init__(self) -> None:
        self.entries: dict[str, list[tuple[bytes, dict]]] = {}
        self.keys: dict[str, bytes] = {}
        self.changed = trio.Event()
        self._last = (0, 0)

    def add(self, stream: str, fields: dict) -> bytes:
        ms = int(trio.current_time() * 1000)
        seq = self._last[1] + 1 if ms <= self._last[0] else 0
        self._last = (max(ms, self._last[0]), seq)
        entry_id = f"{self._last[0]}-{seq}".encode()
        self.entries.setdefault(stream, []).append((entry_id, dict(fields)))
        self.changed.set()
        self.changed = trio.Event()
        return entry_id

    def after(self, stream: str, after: bytes, count: int | None = None) -> list:
        position = parse_id(after)
        found = [e for e in self.entries.get(stream, []) if parse_id(e[0]) > position]
        return found[:count] if count is not None else found


def command_fields(command: Any, reply_to: bytes = b"test", request_id: bytes = b"1") -> dict:
    return {
        BODY_FIELD: codec.encode(command),
        REPLY_TO_FIELD: reply_to,
        REQUEST_ID_FIELD: request_id,
    }


class FakeLog:
    """The engine's ``CommandLog`` port in memory, recording flushes; ``fail_reads`` and
    ``fail_flushes`` make the next calls raise ServiceUnavailable (a flush can fail *after*
    landing, as when the connection breaks before EXEC's answer arrives)."""

    def __init__(self) -> None:
        self.streams = Streams()
        self.flushed: list[BatchOutput] = []
        self.flushed_mark: bytes | None = None
        self.read_times: list[float] = []
        self.fail_reads = 0
        self.fail_flushes = 0
        self.flush_lands_before_failing = False

    def add_command(self, command: Any, request_id: bytes = b"1") -> bytes:
        return self.streams.add("commands", command_fields(command, request_id=request_id))

    def add_raw(self, fields: dict) -> bytes:
        return self.streams.add("commands", fields)

    async def read(self, command_after: bytes, query_after: bytes, count: int):
        self.read_times.append(trio.current_time())
        if self.fail_reads:
            self.fail_reads -= 1
            raise ServiceUnavailable("scripted outage")
        with trio.move_on_after(READ_BLOCK_MS / 1000):
            while True:
                commands = self.streams.after("commands", command_after, count)
                queries = self.streams.after("queries", query_after, count)
                if commands or queries:
                    return commands, queries
                await self.streams.changed.wait()
        return [], []

    async def read_range(self, after: bytes, until: bytes, count: int):
        return [
            e for e in self.streams.after("commands", after) if parse_id(e[0]) <= parse_id(until)
        ][:count]

    async def query_position(self) -> bytes:
        queries = self.streams.entries.get("queries")
        return queries[-1][0] if queries else b"0-0"

    async def flushed_id(self) -> bytes | None:
        return self.flushed_mark

    async def info(self) -> LogInfo | None:
        commands = self.streams.entries.get("commands")
        if not commands:
            return None
        return LogInfo(len(commands), len(commands), commands[-1][0])

    async def flush(self, out: BatchOutput, then_read: ReadFrom | None = None):
        if self.fail_flushes and not self.flush_lands_before_failing:
            self.fail_flushes -= 1
            raise ServiceUnavailable("scripted outage")
        self.flushed.append(out)
        if out.last_command_id is not None:
            self.flushed_mark = out.last_command_id
        if self.fail_flushes:
            self.fail_flushes -= 1
            raise ServiceUnavailable("scripted outage after EXEC")
        if then_read is None:
            return [], []
        return (
            self.streams.after("commands", then_read.command_after, then_read.count),
            self.streams.after("queries", then_read.query_after, then_read.count),
        )

    def replies(self) -> dict[bytes, bytes]:
        """Every reply flushed, by request id (later ones would overwrite: tests check counts)."""
        return {
            request_id: body
            for out in self.flushed
            for replies in out.replies.values()
            for request_id, body in replies.items()
        }


class FakeSnapshots:
    """The engine's ``Snapshots`` port in memory; ``saved_at`` records trio times of saves."""

    def __init__(self) -> None:
        self.saved: list[StoredSnapshot] = []
        self.saved_at: list[float] = []

    async def ids(self) -> list[bytes]:
        return [s.log_id for s in reversed(self.saved)]

    async def load(self, log_id: bytes) -> StoredSnapshot | None:
        return next((s for s in self.saved if s.log_id == log_id), None)

    async def save(self, snapshot: StoredSnapshot) -> None:
        self.saved.append(snapshot)
        self.saved_at.append(trio.current_time())


class FakePipe:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []

    def xadd(self, *args: Any, **kw: Any) -> None:
        self.calls.append(("xadd", args, kw))


class FakeBus:
    """The slice of ``RedisBridge`` the gateway uses: ``pipeline`` (XADDs), ``xread``, ``get``,
    ``last_id``. ``down`` makes every call raise ServiceUnavailable."""

    def __init__(self) -> None:
        self.streams = Streams()
        self.down = False
        self.failed_reads: list[float] = []  # trio times of reads refused while down

    def _check(self) -> None:
        if self.down:
            raise ServiceUnavailable("scripted outage")

    async def pipeline(self, build: Any, *, transaction: bool = False) -> list:
        await trio.lowlevel.checkpoint()
        self._check()
        pipe = FakePipe()
        build(pipe)
        return [self.streams.add(args[0], args[1]) for _name, args, _kw in pipe.calls]

    async def xread(self, streams: dict, *, count: int, block_ms: int | None = None) -> list:
        await trio.lowlevel.checkpoint()
        if self.down:
            self.failed_reads.append(trio.current_time())
        self._check()
        with trio.move_on_after((block_ms or 0) / 1000):
            while True:
                found = []
                for name, after in streams.items():
                    after = after if isinstance(after, bytes) else after.encode()
                    entries = self.streams.after(name, after, count)
                    if entries:
                        found.append([name.encode(), entries])
                if found:
                    return found
                await self.streams.changed.wait()
        return []

    async def get(self, key: str) -> bytes | None:
        await trio.lowlevel.checkpoint()
        self._check()
        return self.streams.keys.get(key)

    async def last_id(self, stream: str) -> bytes | None:
        self._check()
        entries = self.streams.entries.get(stream)
        return entries[-1][0] if entries else None
