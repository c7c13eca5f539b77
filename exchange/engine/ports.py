"""The two ports the engine service talks to: the command log and the snapshot store.

Redis implements them (:mod:`exchange.engine.redis_log`, :mod:`exchange.engine.snapshots_store`);
the MockClock tests implement them in memory (``tests/service/fakes.py``), which is why the
service knows these protocols and not the adapters. Every method may raise
:class:`~exchange.errors.ServiceUnavailable`; the service retries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import attrs

if TYPE_CHECKING:
    from exchange.engine.core import Engine
    from exchange.engine.outputs import BatchOutput
    from exchange.engine.snapshots_store import BackgroundSave, StoredSnapshot

# A stream entry as the log returns it: (entry id, fields).
Entry = tuple[bytes, dict[bytes, bytes]]


@attrs.frozen
class ReadFrom:
    """Where the next read starts: after these command and query ids, at most ``count`` each."""

    command_after: bytes
    query_after: bytes
    count: int


@attrs.frozen
class LogInfo:
    """The command log's length, how many entries it ever had, and its newest id."""

    length: int
    entries_added: int
    last_generated_id: bytes


class CommandLog(Protocol):
    async def read(
        self, command_after: bytes, query_after: bytes, count: int
    ) -> tuple[list[Entry], list[Entry]]:
        """The next commands and queries after the given ids (waiting briefly for some)."""

    async def read_range(self, after: bytes, until: bytes, count: int) -> list[Entry]:
        """Commands after ``after`` up to ``until`` included (replay)."""

    async def query_position(self) -> bytes:
        """Where to start answering queries: older ones have nobody waiting."""

    async def flushed_id(self) -> bytes | None:
        """The last command whose outputs are all written, or None."""

    async def info(self) -> LogInfo | None:
        """The log's :class:`LogInfo`, or None when it does not exist yet."""

    async def flush(
        self, out: BatchOutput, then_read: ReadFrom | None = None
    ) -> tuple[list[Entry], list[Entry]]:
        """Write a batch's outputs and flushed mark, all or nothing; with ``then_read``, also
        return the commands and queries after it in the same round trip, without waiting."""


class Snapshots(Protocol):
    async def ids(self) -> list[bytes]:
        """The kept snapshots' log ids, newest first."""

    async def load(self, log_id: bytes) -> StoredSnapshot | None: ...
    async def save(self, snapshot: StoredSnapshot) -> None: ...
    def save_in_background(self, engine: Engine, log_id: bytes) -> BackgroundSave: ...
