"""Engine snapshots in Redis, each saved atomically with the id of the last command it includes.

Layout::

    exchange:engine:snapshot:<log id>   one value: a JSON header line, then the snapshot bytes
    exchange:engine:snapshots           list of the kept snapshots' log ids, newest first

The header (``log_id``, ``seq``) and the state travel in one value written by one SET, so a
snapshot can never be torn or paired with the wrong log position. A save is one MULTI/EXEC
(under WATCH of the index): SET the new snapshot, rewrite the index sorted by log position and,
once more than ``kept`` exist, delete the oldest and trim the command stream below the oldest
snapshot still kept (``XTRIM MINID ~``: approximate, so Redis frees whole nodes and may keep a
little more, never less); until then the whole log stays. A crash before EXEC leaves the previous
state, after it the new one; either way every kept snapshot can be replayed forward from the
stream.

Serialising a large state takes a while (hundreds of milliseconds for ~100k orders), and the
engine must not change it meanwhile. :meth:`SnapshotStore.save_in_background` therefore does
what Redis does for BGSAVE: ``fork()``. The child holds a copy-on-write image of the engine as it
was between two batches; it serialises it, waits until the flushed mark has reached the
snapshot's log id (a snapshot must never include a command whose outputs are not in Redis yet),
saves it with its own connection and exits, while the parent goes on matching. The child touches
nothing it shares with the parent's threads (no trio, no inherited connection, no logging).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import time

import attrs
import orjson
import redis

from exchange.bus import RedisBridge
from exchange.engine import snapshot
from exchange.engine.core import Engine
from exchange.names import COMMAND_STREAM, FLUSHED_KEY, SNAPSHOT_INDEX_KEY, parse_id, snapshot_key

log = logging.getLogger(__name__)

FLUSH_WAIT_S = 60.0
_PR_SET_PDEATHSIG = 1


@attrs.frozen
class StoredSnapshot:
    """An engine snapshot (``exchange.engine.snapshot.dumps``) and where in the log it stands."""

    log_id: bytes
    seq: int
    blob: bytes


def encode_record(snapshot: StoredSnapshot) -> bytes:
    header = orjson.dumps({"log_id": snapshot.log_id.decode(), "seq": snapshot.seq})
    return header + b"\n" + snapshot.blob


def decode_record(record: bytes) -> StoredSnapshot:
    """Raises ValueError when the record is not one :func:`encode_record` wrote."""
    header, newline, blob = record.partition(b"\n")
    if not newline:
        raise ValueError("snapshot record has no header line")
    try:
        meta = orjson.loads(header)
        return StoredSnapshot(meta["log_id"].encode(), int(meta["seq"]), blob)
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"bad snapshot header: {exc!r}") from None


def save_now(client: redis.Redis, snapshot: StoredSnapshot, kept: int) -> None:
    """Store ``snapshot``, drop the oldest beyond ``kept``, trim the log (blocking).

    The index stays sorted by log position whoever saves (WATCH guards it against a concurrent
    saver), so "the oldest kept" is really the oldest and trimming never cuts below a snapshot
    that is still offered for recovery. A snapshot already stored is left alone.
    """
    with client.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(SNAPSHOT_INDEX_KEY)
                ids = pipe.lrange(SNAPSHOT_INDEX_KEY, 0, -1)
                if snapshot.log_id in ids:
                    return
                ids = sorted([snapshot.log_id, *ids], key=parse_id, reverse=True)
                keep, dropped = ids[:kept], ids[kept:]
                pipe.multi()
                if snapshot.log_id in keep:
                    pipe.set(snapshot_key(snapshot.log_id.decode()), encode_record(snapshot))
                pipe.delete(SNAPSHOT_INDEX_KEY)
                pipe.rpush(SNAPSHOT_INDEX_KEY, *keep)
                if dropped:
                    # The oldest kept snapshot moved up: the log below it is needed no more.
                    pipe.delete(*(snapshot_key(old.decode()) for old in dropped))
                    pipe.xtrim(COMMAND_STREAM, minid=keep[-1], approximate=True)
                pipe.execute()
                return
            except redis.WatchError:
                continue


class SnapshotStore:
    """Save and find engine snapshots; raises ServiceUnavailable when Redis is unreachable."""

    def __init__(self, bus: RedisBridge, *, kept: int) -> None:
        if kept < 1:
            raise ValueError("keep at least one snapshot")
        self.bus = bus
        self.kept = kept

    async def ids(self) -> list[bytes]:
        """Log ids of the kept snapshots, newest first."""
        return await self.bus.call(self.bus.client.lrange, SNAPSHOT_INDEX_KEY, 0, -1)

    async def load(self, log_id: bytes) -> StoredSnapshot | None:
        """The snapshot taken at ``log_id``; None when it is missing or its record is unreadable."""
        record = await self.bus.get(snapshot_key(log_id.decode()))
        if record is None:
            return None
        try:
            snapshot = decode_record(record)
        except ValueError as exc:
            log.error("snapshot %s is unreadable: %s", log_id.decode(), exc)
            return None
        return snapshot if snapshot.log_id == log_id else None

    async def save(self, snapshot: StoredSnapshot) -> None:
        """Store ``snapshot`` (see :func:`save_now`)."""
        await self.bus.call(save_now, self.bus.client, snapshot, self.kept)

    def save_in_background(self, engine: Engine, log_id: bytes) -> BackgroundSave:
        """Snapshot ``engine`` as it is now without stopping it: fork (see the module docstring)."""
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: no trio, no inherited connections, no logging
            code = 70
            try:
                _die_with(parent)
                code = _save_from_child(self.bus.url, engine, log_id, self.kept)
            finally:
                os._exit(code)
        return BackgroundSave(pid, log_id, engine.seq)


@attrs.define
class BackgroundSave:
    """A forked child saving one snapshot."""

    pid: int
    log_id: bytes
    seq: int
    started_at: float = attrs.Factory(time.monotonic)

    def poll(self) -> int | None:
        """The child's exit code once it has exited (reaping it), else None."""
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        return None if pid == 0 else os.waitstatus_to_exitcode(status)


def _die_with(parent: int) -> None:
    """Have the kernel kill us if the engine dies (Linux): its unsaved snapshot dies with it
    rather than racing a restarted engine's."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(71)


def _save_from_child(url: str, engine: Engine, log_id: bytes, kept: int) -> int:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)  # the parent's handlers belong to its trio run
    signal.set_wakeup_fd(-1)
    stored = StoredSnapshot(log_id, engine.seq, snapshot.dumps(engine))
    client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=2)
    # Never before the outputs of every command in it are in Redis (the parent flushes them).
    deadline = time.monotonic() + FLUSH_WAIT_S
    while True:
        flushed = client.get(FLUSHED_KEY)
        if flushed is not None and parse_id(flushed) >= parse_id(log_id):
            break
        if time.monotonic() > deadline:
            return 75  # EX_TEMPFAIL: the parent will snapshot again later
        time.sleep(0.005)
    save_now(client, stored, kept)
    return 0
