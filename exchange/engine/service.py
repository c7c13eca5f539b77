"""The engine's trio shell: read the command log in batches, apply, write one pipeline per batch.

::

    recover  newest readable snapshot → replay the log after it (silently up to the flushed mark)
    serve    one loop: apply a batch in log order, answer its queries (the pure core; no I/O),
             then one MULTI/EXEC: replies, one events entry, publishes, flushed mark,
             heartbeat, and the XREAD of the next batch; a blocking XREAD (BLOCK 50 ms) only
             when that comes back empty; every N commands or T seconds, snapshot between batches

The service talks to two ports (:mod:`.ports`): the command log (Redis: :mod:`.redis_log`) and
the snapshot store (:mod:`.snapshots_store`); :mod:`.schedule` says when to snapshot and
:mod:`.program` wires it all from the settings.

**Exactly-once outputs.** A batch's MULTI/EXEC also sets ``exchange:engine:flushed`` to the id of
its last command, so Redis itself records how far the outputs went: all of a batch's replies,
events and publishes are there, or none. On start the commands up to that id are replayed
silently (their outputs are already in Redis) and those after it normally, so a crash between
applying and flushing loses nothing and repeats nothing. A flush retried after a lost connection
first reads the mark, since the EXEC may have landed before the connection broke.

**Snapshots** capture the state between two batches and are saved only once the mark has reached
their log id, so the mark is never behind a snapshot. ``bin/engine`` forks a child to serialise
and save each one (``SnapshotStore.save_in_background``, copy-on-write like Redis's BGSAVE) so
matching does not stall for the hundreds of milliseconds a large state takes; without
``background_snapshots`` the processor serialises in line and the writer saves after the
batch's flush.

**Why XREAD and not a consumer group.** The engine is the log's only reader and its read
position is part of its state (saved in every snapshot), so reading after the last applied id is
enough; acknowledgements would be one more write per batch, for nothing.

**Redis going away.** Every Redis call is retried with back-off on the trio clock until it
succeeds. The read position advances only when entries are applied and a batch is flushed
exactly once (above), so nothing is dropped or applied twice. After an outage the engine checks
that the log was not rolled back (a Redis that restarted after losing acknowledged writes, which
``appendfsync everysec`` allows for the last second): then it stops, and a restart recovers from
what Redis kept, instead of silently skipping new commands whose ids are below its position.

**Malformed entries** (an undecodable body, a query in the command log) are answered with an
INVALID_REQUEST rejection and take no sequence number; replay decodes them the same way. An
exception raised by the core (a bug) is logged and answered the same way, so one poisoned
command cannot crash-loop the engine; replay repeats it deterministically.

**One round trip per batch.** Inside MULTI/EXEC an XREAD does not wait, so a batch's flush
also fetches whatever arrived while it was applied: under load each batch costs one Redis round
trip and one thread hop, and batches grow with the load instead of the engine chasing single
entries. (An earlier shape, a reader, a processor and a writer overlapping their round trips,
spent two hops per batch and took batches of one or two entries.) Everything queued stays in
``_unwritten`` until written.

**Shutdown.** Cancellation (SIGINT/SIGTERM in ``bin/engine``) reaches the loop at an await
(applying a batch has none, so a batch is applied whole); the ``finally`` writes whatever is
still queued (checking the flushed mark first, a write may have been cut short) and takes a last
snapshot, shielded and bounded in time.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

from exchange import codec
from exchange.engine import snapshot
from exchange.engine.core import Engine
from exchange.engine.outputs import BatchOutput
from exchange.engine.ports import CommandLog, Entry, ReadFrom, Snapshots
from exchange.engine.schedule import SnapshotSchedule
from exchange.engine.snapshots_store import BackgroundSave, StoredSnapshot
from exchange.errors import ErrorCode, ExchangeError
from exchange.markets import MarketConfig
from exchange.models import Command, Outcome, Query, Rejection
from exchange.names import BODY_FIELD, id_ms, parse_id
from exchange.retry import retry

log = logging.getLogger(__name__)

REPLAY_CHUNK = 2_000
HEARTBEAT_INTERVAL_S = 1.0  # when idle; busy batches carry one each (key TTL: HEARTBEAT_TTL_MS)
SHUTDOWN_TIMEOUT_S = 10.0
START_ID = b"0-0"

T = TypeVar("T")
Batch = tuple[list[Entry], list[Entry]]  # a read's (commands, queries)

_MALFORMED_COMMAND = codec.encode(
    Rejection(ErrorCode.INVALID_REQUEST, "malformed command: not a command record")
)
_MALFORMED_QUERY = codec.encode(
    Rejection(ErrorCode.INVALID_REQUEST, "malformed query: not a query record")
)
_ENGINE_FAILURE = Rejection(ErrorCode.INVALID_REQUEST, "the engine could not process this request")


class LogRolledBack(ExchangeError):
    """The command log ends before the last command the engine applied (Redis lost writes)."""


class UnrecoverableLog(ExchangeError):
    """The log was trimmed and no readable snapshot covers the trimmed part."""


# --- the shell -----------------------------------------------------------------------------------


class EngineService:
    """One engine fed by a command log; see the module docstring."""

    def __init__(
        self,
        config: MarketConfig,
        log: CommandLog,
        snapshots: Snapshots,
        *,
        batch_size: int = 512,
        snapshot_every_commands: int = 50_000,
        snapshot_every_s: float = 60.0,
        background_snapshots: bool = False,
    ) -> None:
        self.config = config
        self.log = log
        self.snapshots = snapshots
        self.batch_size = batch_size
        self.engine = Engine(config)
        self.last_id = START_ID  # the last command-log entry applied
        self.query_id = START_ID  # the last query answered
        self.schedule = SnapshotSchedule(snapshot_every_commands, snapshot_every_s)
        # Snapshot in a forked child (SnapshotStore.save_in_background) instead of in line.
        self.background_snapshots = background_snapshots
        self._background: BackgroundSave | None = None
        self.batches = 0
        # Outputs and snapshots queued for the writer, in order, until written.
        self._unwritten: deque[BatchOutput | StoredSnapshot] = deque()
        self._heartbeat_at = -math.inf
        self._outage = False

    # --- recovery ------------------------------------------------------------------------------

    async def recover(self) -> None:
        """Load the newest readable snapshot and replay the log after it, silently up to the
        flushed mark. Raises UnrecoverableLog when the log was trimmed past every snapshot."""
        self.query_id = await self._retry(self.log.query_position)
        await self._load_snapshot()
        flushed = await self._retry(self.log.flushed_id)
        replayed = 0
        if flushed is not None:
            while parse_id(self.last_id) < parse_id(flushed):
                entries = await self._retry(
                    self.log.read_range, self.last_id, flushed, REPLAY_CHUNK
                )
                if not entries:
                    break
                for entry_id, fields in entries:
                    replayed += self._apply(entry_id, fields, None)
        self.schedule.note(replayed, trio.current_time())
        self._outage = False
        log.info(
            "recovered at %s (seq %d); %d commands replayed silently",
            self.last_id.decode(),
            self.engine.seq,
            replayed,
        )

    async def _load_snapshot(self) -> None:
        for log_id in await self._retry(self.snapshots.ids):
            stored = await self._retry(self.snapshots.load, log_id)
            if stored is None:
                continue
            try:
                self.engine = snapshot.loads(stored.blob, self.config)
            except snapshot.SnapshotError as exc:
                log.error("snapshot %s unusable (%s); trying an older one", log_id.decode(), exc)
                continue
            self.last_id = stored.log_id
            log.info("loaded snapshot %s (seq %d)", log_id.decode(), stored.seq)
            return
        info = await self._retry(self.log.info)
        if info is not None and info.entries_added > info.length:
            raise UnrecoverableLog(
                "the command log was trimmed and no readable snapshot covers the trimmed part"
            )

    # --- serving -------------------------------------------------------------------------------

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Process batches until cancelled; write what is pending and snapshot on the way out.

        Each batch's write brings back the next batch (see the module docstring); only an
        empty answer makes the loop wait in a blocking read.
        """
        try:
            await self._write(self._heartbeat_output())  # we are up
            self._heartbeat_at = trio.current_time()
            task_status.started()
            batch: Batch = ([], [])
            while True:
                if batch == ([], []):
                    batch = await self._read()
                # A thread's answer arrives even when we were cancelled meanwhile: what it
                # read is left to the next start, not applied on the way out.
                await trio.lowlevel.checkpoint_if_cancelled()
                self._process_batch(*batch)
                batch = await self._write_pending(read_next=True)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(SHUTDOWN_TIMEOUT_S) as scope:
                await self._write_pending(check_marker=True)
                while self._background is not None:  # it waits for the flush above
                    self._poll_background(trio.current_time())
                    await trio.sleep(0.01)
                if self.schedule.pending:
                    self._unwritten.append(self._snapshot_now())
                    await self._write_pending()
            if scope.cancelled_caught:
                log.error("shutdown incomplete (Redis unreachable); a restart will recover")

    async def step(self) -> None:
        """One batch, start to end: read (waiting briefly for entries), apply, write, and
        snapshot when due. The unrolled form of :meth:`serve`, for tests and tools."""
        self._process_batch(*await self._read())
        await self._write_pending()

    async def _read(self) -> Batch:
        """The next batch after what was applied, waiting briefly for one; empty reads too
        (they drive the idle heartbeat)."""
        if self._outage:
            await self._check_not_rolled_back(self.last_id)
        return await self._retry(self.log.read, self.last_id, self.query_id, self.batch_size)

    def _process_batch(self, commands: list[Entry], queries: list[Entry]) -> None:
        """Apply a batch and queue what must be written: its output (or an idle heartbeat) and
        a snapshot when one is due. Queued items stay in ``_unwritten`` until written."""
        now = trio.current_time()
        items: list[Any] = []
        if commands or queries:
            items.append(self.process(commands, queries))
        elif now - self._heartbeat_at >= HEARTBEAT_INTERVAL_S:
            items.append(self._heartbeat_output())
        if items:
            self._heartbeat_at = now
        if self._background is not None:
            self._poll_background(now)
        if self.schedule.due(now) and self._background is None:
            if self.background_snapshots:
                self._background = self.snapshots.save_in_background(self.engine, self.last_id)
                self.schedule.done()
            else:
                items.append(self._snapshot_now())
        self._unwritten.extend(items)

    def _poll_background(self, now: float) -> None:
        background = self._background
        code = background.poll()
        if code is None:
            return
        self._background = None
        elapsed_ms = (time.monotonic() - background.started_at) * 1000
        if code == 0:
            log.info(
                "snapshot saved at %s (seq %d) in the background, %.0f ms",
                background.log_id.decode(),
                background.seq,
                elapsed_ms,
            )
        else:
            log.error("background snapshot failed (exit code %d); will try again", code)
            self.schedule.note(1, now)

    async def _write_pending(self, *, read_next: bool = False, check_marker: bool = False) -> Batch:
        """Write everything queued, in order; with ``read_next``, the last write also reads
        the next batch. Empty after an outage: :meth:`_read` checks the log first."""
        batch: Batch = ([], [])
        while self._unwritten:
            then_read = None
            if read_next and len(self._unwritten) == 1:
                then_read = ReadFrom(self.last_id, self.query_id, self.batch_size)
            batch = await self._write(self._unwritten[0], then_read, check_marker=check_marker)
            self._unwritten.popleft()
        return ([], []) if self._outage else batch

    def process(self, commands: list[Entry], queries: list[Entry]) -> BatchOutput:
        """Apply a batch's commands in log order, then answer its queries. No I/O."""
        out = self._heartbeat_output()
        applied = 0
        for entry_id, fields in commands:
            applied += self._apply(entry_id, fields, out)
        if commands:
            out.last_command_id = self.last_id
            out.last_command_ms = id_ms(self.last_id)
        for entry_id, fields in queries:
            self._answer(fields, out)
            self.query_id = entry_id
        out.newest_ms = max(out.last_command_ms, id_ms(queries[-1][0]) if queries else 0)
        out.heartbeat["lag"] = max(0, out.heartbeat["ts"] - out.last_command_ms) if commands else 0
        out.heartbeat["seq"] = self.engine.seq
        out.heartbeat["log_id"] = self.last_id.decode()
        self.schedule.note(applied, trio.current_time())
        self.batches += 1
        return out

    def _apply(self, entry_id: bytes, fields: dict[bytes, bytes], out: BatchOutput | None) -> int:
        """Apply one log entry; returns 1 if it was a command, 0 if malformed."""
        self.last_id = entry_id
        try:
            command = codec.decode(fields[BODY_FIELD])
            if not isinstance(command, Command):
                raise TypeError(f"{type(command).__name__} is not a command")
        except Exception:
            if out is not None:
                out.reply(fields, _MALFORMED_COMMAND)
            return 0
        seq = self.engine.seq + 1
        try:
            outcome = self.engine.apply(command, seq=seq, ts=id_ms(entry_id))
        except Exception:
            log.exception("engine failed on command %s (seq %d)", entry_id.decode(), seq)
            outcome = Outcome(_ENGINE_FAILURE)
        if out is not None:
            out.add(fields, seq, outcome)
        return 1

    def _answer(self, fields: dict[bytes, bytes], out: BatchOutput) -> None:
        try:
            query = codec.decode(fields[BODY_FIELD])
            if not isinstance(query, Query):
                raise TypeError(f"{type(query).__name__} is not a query")
        except Exception:
            out.reply(fields, _MALFORMED_QUERY)
            return
        try:
            reply = self.engine.query(query)
        except Exception:
            log.exception("engine failed on query %r", query)
            reply = _ENGINE_FAILURE
        out.reply(fields, codec.encode(reply))

    def _heartbeat_output(self) -> BatchOutput:
        out = BatchOutput()
        out.heartbeat = {
            "seq": self.engine.seq,
            "log_id": self.last_id.decode(),
            "lag": 0,
            "ts": int(time.time() * 1000),
        }
        return out

    async def _write(
        self,
        item: BatchOutput | StoredSnapshot,
        then_read: ReadFrom | None = None,
        *,
        check_marker: bool = False,
    ) -> Batch:
        """Write a batch's output exactly once, or save a snapshot; retry while Redis is away.
        Returns what ``then_read`` read in the same round trip (empty when nothing was read).

        ``check_marker``: the item may have been written already (a write cut short).
        """
        if isinstance(item, StoredSnapshot):
            await self._retry(self.snapshots.save, item)
            log.info("snapshot saved at %s (seq %d)", item.log_id.decode(), item.seq)
            return [], []
        attempted = check_marker

        async def attempt() -> Batch:
            nonlocal attempted
            if attempted and item.last_command_id is not None:
                flushed = await self.log.flushed_id()
                if flushed is not None and parse_id(flushed) >= parse_id(item.last_command_id):
                    return [], []  # the earlier EXEC landed; only its answer was lost
            attempted = True
            return await self.log.flush(item, then_read)

        return await self._retry(attempt)

    def _snapshot_now(self) -> StoredSnapshot:
        """The current state, tagged with the last applied entry. Synchronous: the state must
        not change while it is serialised."""
        started = time.perf_counter()
        stored = StoredSnapshot(self.last_id, self.engine.seq, snapshot.dumps(self.engine))
        self.schedule.done()
        log.info(
            "snapshot taken at %s (seq %d, %d bytes, %.0f ms)",
            stored.log_id.decode(),
            stored.seq,
            len(stored.blob),
            (time.perf_counter() - started) * 1000,
        )
        return stored

    # --- Redis going away ------------------------------------------------------------------------

    async def _retry(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(*args)`` until it does not raise ServiceUnavailable, backing off."""
        return await retry(fn, *args, on_failure=self._note_outage)

    def _note_outage(self, exc: BaseException, _delay: float, _failures: int) -> None:
        if not self._outage:
            log.warning("Redis unavailable (%s); retrying with back-off", exc)
        self._outage = True

    async def _check_not_rolled_back(self, position: bytes) -> None:
        """After an outage: the log must still reach ``position`` (the last entry we read)."""
        info = await self._retry(self.log.info)
        self._outage = False
        log.info("Redis is back")
        if position == START_ID:
            return
        if info is None or parse_id(info.last_generated_id) < parse_id(position):
            # Our state is ahead of the log: write nothing more of it, snapshot nothing.
            self._unwritten.clear()
            self.schedule.pending = 0
            raise LogRolledBack(
                f"the command log ends before {position.decode()}, which the engine has read"
            )
