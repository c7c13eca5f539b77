"""The db writer's consumer of the engine's events stream: read, write, acknowledge.

Two tasks joined by a one-slot channel, so reading the next batch overlaps writing this one::

    reader: XREADGROUP (own pending first, then claimed, then new) → decode ─┐
    writer: ◄────────────────────────────────────────────────────────────────┘
            COPY into staging → upsert trades and orders → COMMIT → XACK

Guarantees, and why:

- *Nothing is lost.* An entry is acknowledged only after the transaction holding its rows has
  committed. A writer killed at any point leaves its entries pending in the consumer group; on
  restart it re-reads its own pending entries (``XREADGROUP ... 0``) before new ones, and
  entries left by another consumer that died are taken over with XAUTOCLAIM once idle for
  ``db_claim_idle_s`` (at start and whenever our own pipeline is empty, so we never steal back
  entries we are still writing).
- *Nothing is doubled.* Every write is an upsert keyed by engine ids (see
  :mod:`exchange.history.statements`): a redelivered entry, or the engine replaying its log after a
  restart, changes nothing.
- *Outages wait.* If PostgreSQL or Redis is down, the batch in hand is retried with back-off
  until it goes through; new events wait in Redis meanwhile. A connection that stops answering
  (a stopped server, a cut network) is given up after ``db_write_timeout_s`` and the batch
  retried on a new one (:mod:`exchange.history.pg`), so the writer never hangs on it.
- *The stream stays short.* Entries every consumer group is done with are trimmed (XTRIM
  MINID) every :data:`TRIM_INTERVAL_S`; the engine leaves that to the writer.
- *Candles are settled in bulk.* Trades written behind a continuous aggregate's horizon (a
  backlog, late trades) show in the candles once their buckets are refreshed (``settle_candles``
  in ``sql/migrations/0004_*``), which costs a refresh of each aggregate, re-aggregating whole
  buckets. So the writer settles the time range of every batch committed since the last settle:
  at once when it has caught up with the stream (a batch shorter than ``db_read_count``), and
  otherwise at most every :data:`SETTLE_INTERVAL_S` (or when no batch follows within it). While
  the writer is behind, history is behind anyway: candles of a backlog trail its trades by at
  most that interval. A writer stopped between a commit and its settle leaves those buckets to
  the refresh policies, which re-materialize every invalidated range on their schedule.
- *Batches gather.* After a read that drained the stream the reader waits ``linger_s``
  (``DB_LINGER_MS``) before the next, so under a steady flow one transaction carries many engine
  batches: its fixed cost (round trips, commit, settle, XACK) is most of what one costs.
- *Bad data does not block.* An entry that cannot be decoded, or whose rows PostgreSQL refuses
  on their own (bad values, violated constraints), is copied to :data:`DEAD_LETTER_STREAM` with
  the error and acknowledged; the rest of its batch is written.

The consumer name (``db_consumer``) must be stable across restarts of one writer, and distinct
between writers that run at once.
"""

from __future__ import annotations

import logging
import math

import attrs
import psycopg
import redis
import trio

from exchange import bus, names
from exchange.db.copy_batch import copy_rows, settle_candles, trade_span
from exchange.db.rows import BadEntry, EntryRows, decode_entry, merge
from exchange.errors import ServiceUnavailable
from exchange.history import pg
from exchange.markets import MarketConfig
from exchange.names import DEAD_LETTER_STREAM, EVENTS_GROUP
from exchange.retry import OnFailure, retry

log = logging.getLogger(__name__)

# Short, because a worker thread blocked in XREADGROUP delays shutdown by up to this.
READ_BLOCK_MS = 100
STATS_LOG_INTERVAL_S = 10.0
# How often acknowledged entries are trimmed from the events stream (the engine leaves that to
# us: it cannot know what has been written).
TRIM_INTERVAL_S = 1.0
# While draining a backlog, candles are settled at most this often (see the module doc).
SETTLE_INTERVAL_S = 1.0
# (The writer makes millions of short-lived objects a minute; with the default collector
# thresholds rescanning them was more than half of the decoding CPU: see exchange.programs.)
# Errors that blame the rows (bad values, violated constraints): their entries are dead-lettered.
# Any other database error is a bug or a broken schema, and stops the writer instead.
_REFUSED_DATA = (psycopg.DataError, psycopg.IntegrityError)


@attrs.define
class WriterStats:
    """Counters since start (the benchmark and tests read them)."""

    entries: int = 0  # stream entries acknowledged
    trades: int = 0  # trade events in committed batches (including duplicates)
    orders: int = 0  # order states upserted (newest per order per batch)
    dead: int = 0  # entries sent to the dead-letter stream
    trimmed: int = 0  # entries removed from the events stream once written
    settles: int = 0  # settle_candles calls (one per drained backlog, or per SETTLE_INTERVAL_S)


@attrs.frozen
class Batch:
    """Entries read together, decoded: each entry's rows, all of them merged for one
    transaction, and the entries that cannot be decoded (``bad``). ``caught_up``: the read
    returned fewer entries than it asked for, so nothing more was waiting."""

    ids: list[bytes]
    rows: list[tuple[bytes, dict, EntryRows]]
    merged: EntryRows
    bad: list[tuple[bytes, dict | None, str]]
    caught_up: bool = False


@attrs.define
class Unsettled:
    """The time range of the committed trades whose candles are not settled yet, and when the
    first of them was committed (trio time)."""

    oldest_ms: int = 0
    newest_ms: int = 0
    since: float | None = None

    def add(self, rows: EntryRows, now: float) -> None:
        span = trade_span(rows)
        if span is None:
            return
        if self.since is None:
            self.oldest_ms, self.newest_ms, self.since = *span, now
        else:
            self.oldest_ms = min(self.oldest_ms, span[0])
            self.newest_ms = max(self.newest_ms, span[1])


def _decode(entries: list, asked: int, config: MarketConfig, ledger: bool) -> Batch:
    ids: list[bytes] = []
    good: list[tuple[bytes, dict, EntryRows]] = []
    bad: list[tuple[bytes, dict | None, str]] = []
    for entry_id, fields in entries:
        ids.append(entry_id)
        if not fields:
            # Trimmed from the stream while pending: there is nothing left to write.
            log.warning("events entry %s is gone from the stream; acknowledging it", entry_id)
            continue
        try:
            good.append((entry_id, fields, decode_entry(fields, config, ledger=ledger)))
        except BadEntry as exc:
            bad.append((entry_id, fields, str(exc)))
    merged = merge(rows for _, _, rows in good)
    return Batch(ids, good, merged, bad, caught_up=len(entries) < asked)


class EventWriter:
    """Consumes the events stream as ``consumer`` of :data:`EVENTS_GROUP`; see the module doc."""

    def __init__(
        self,
        redis_bridge: bus.RedisBridge,
        db: pg.DedicatedConnection,
        *,
        consumer: str,
        read_count: int,
        claim_idle_s: float,
        linger_s: float = 0.0,
        config: MarketConfig,
        ledger: bool = True,
    ) -> None:
        self.redis = redis_bridge
        self.config = config  # the markets, to render the events' money for PostgreSQL
        self.ledger = ledger  # write the account ledger's movements (DB_LEDGER)
        self.db = db
        self.consumer = consumer
        self.read_count = read_count
        self.linger_s = linger_s  # pause after a read that drained the stream (see _reader)
        self.claim_idle_ms = int(claim_idle_s * 1000)
        self.stats = WriterStats()
        self._in_flight = 0  # entries read and not yet acknowledged
        self._unsettled = Unsettled()

    # --- Redis --------------------------------------------------------------------------------

    async def ensure_group(self) -> None:
        """Create the consumer group (reading from the stream's start) unless it exists."""
        try:
            await self.redis.call(
                self.redis.client.xgroup_create,
                names.EVENT_STREAM,
                EVENTS_GROUP,
                id="0",
                mkstream=True,
            )
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _read(self, start: str) -> Batch:
        """XREADGROUP from ``start`` (``">"``: new entries; ``"0"`` or an id: our own pending),
        decoded in the same worker thread (see :meth:`run`)."""

        def read_and_decode() -> Batch:
            reply = self.redis.client.xreadgroup(
                EVENTS_GROUP,
                self.consumer,
                {names.EVENT_STREAM: start},
                count=self.read_count,
                block=READ_BLOCK_MS if start == ">" else None,
            )
            return _decode(reply[0][1] if reply else [], self.read_count, self.config, self.ledger)

        while True:
            try:
                return await self.redis.call(read_and_decode)
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # The stream or group was deleted under us (e.g. Redis was flushed).
                log.warning("events consumer group is gone; creating it again")
                await self.ensure_group()

    async def _claim(self, cursor: bytes | str) -> tuple[bytes, Batch]:
        """One page of entries that other consumers have left idle for ``claim_idle_ms``, now
        ours, decoded; and the cursor of the next page (``b"0-0"`` after the last)."""

        def claim_and_decode() -> tuple[bytes, Batch]:
            reply = self.redis.client.xautoclaim(
                names.EVENT_STREAM,
                EVENTS_GROUP,
                self.consumer,
                self.claim_idle_ms,
                start_id=cursor,
                count=self.read_count,
            )
            return reply[0], _decode(reply[1], self.read_count, self.config, self.ledger)

        return await self.redis.call(claim_and_decode)

    async def _ack(self, ids: list[bytes]) -> None:
        await self.redis.call(self.redis.client.xack, names.EVENT_STREAM, EVENTS_GROUP, *ids)

    async def _dead_letter(self, bad: list[tuple[bytes, dict | None, str]]) -> None:
        """Keep the undecodable entries aside and acknowledge them, atomically."""

        def build(pipe: redis.client.Pipeline) -> None:
            for entry_id, fields, error in bad:
                kept = dict(fields or {})
                kept.update({b"id": entry_id, b"error": error.encode()})
                pipe.xadd(DEAD_LETTER_STREAM, kept)
                pipe.xack(names.EVENT_STREAM, EVENTS_GROUP, entry_id)

        await self.redis.pipeline(build, transaction=True)
        for entry_id, _, error in bad:
            log.error("events entry %s sent to %s: %s", entry_id, DEAD_LETTER_STREAM, error)
        self.stats.dead += len(bad)

    async def _trim(self) -> int:
        """Drop the entries every consumer group of the stream is done with; returns how many.

        A group still needs its pending entries and those not yet delivered to it, so the
        stream keeps everything from the oldest such entry over all groups. New deliveries only
        move that bound forward, so a bound computed a moment ago is always safe.
        """

        def trim() -> int:
            client = self.redis.client
            try:
                groups = client.xinfo_groups(names.EVENT_STREAM)
            except redis.ResponseError:  # no stream (yet, or any more): nothing to trim
                return 0
            bound = oldest_needed(client, groups)
            if bound is None:
                return 0
            return client.xtrim(
                names.EVENT_STREAM, minid=f"{bound[0]}-{bound[1]}", approximate=False
            )

        return await self.redis.call(trim)

    # --- the tasks ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Read and write until cancelled.

        The reader decodes each batch in the worker thread that read it: parsing JSON is the
        writer's main CPU cost, and a separate decoding thread would hold the GIL while the
        reading thread needs it after every socket read, slowing both (measured). One slot
        between reader and writer lets reading and decoding overlap the PostgreSQL round trips.
        """
        send, receive = trio.open_memory_channel[Batch](1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._reader, send)
            nursery.start_soon(self._trimmer)
            await self._writer(receive)

    async def _reader(self, send: trio.MemorySendChannel[Batch]) -> None:
        async with send:
            # Our own entries left pending by a previous run of this consumer.
            cursor = "0"
            while True:
                batch = await retrying("read pending events", self._read, cursor)
                if not batch.ids:
                    break
                cursor = batch.ids[-1]
                await self._hand_over(send, batch)
            claim_due = 0.0
            while True:
                if self._in_flight == 0 and trio.current_time() >= claim_due:
                    await self._claim_all(send)
                    claim_due = trio.current_time() + max(self.claim_idle_ms / 1000, 1.0)
                batch = await retrying("read events", self._read, ">")
                if batch.ids:
                    await self._hand_over(send, batch)
                if batch.caught_up and self.linger_s:
                    # Let the next batch gather: a transaction, its settle and its XACK cost
                    # the same for one engine batch as for thirty, so at a steady trickle
                    # waiting a few milliseconds divides the writer's and PostgreSQL's CPU per
                    # order (bench-http); history trails the engine by at most this more.
                    await trio.sleep(self.linger_s)

    async def _trimmer(self) -> None:
        while True:
            await trio.sleep(TRIM_INTERVAL_S)
            try:
                self.stats.trimmed += await self._trim()
            except ServiceUnavailable as exc:  # next time, then
                log.warning("cannot trim the events stream: %s", exc)

    async def _claim_all(self, send: trio.MemorySendChannel[Batch]) -> None:
        """Take over every entry another consumer has left idle, a page at a time."""
        cursor: bytes | str = "0-0"
        while True:
            cursor, batch = await retrying("claim events", self._claim, cursor)
            if batch.ids:
                log.info("claimed %d events entries left by another consumer", len(batch.ids))
                await self._hand_over(send, batch)
            if cursor in (b"0-0", "0-0"):
                return

    async def _hand_over(self, send: trio.MemorySendChannel[Batch], batch: Batch) -> None:
        self._in_flight += len(batch.ids)
        await send.send(batch)

    async def _writer(self, receive: trio.MemoryReceiveChannel[Batch]) -> None:
        last_log, logged = trio.current_time(), attrs.evolve(self.stats)
        async with receive:
            while True:
                batch = None
                with trio.move_on_at(self._settle_due()):
                    try:
                        batch = await receive.receive()
                    except trio.EndOfChannel:
                        return
                if batch is None:  # no batch followed within SETTLE_INTERVAL_S
                    await self._settle()
                    continue
                await self._write_batch(batch)
                now = trio.current_time()
                if now - last_log >= STATS_LOG_INTERVAL_S:
                    log.info(
                        "wrote %d entries, %d trades, %d order states in %.0fs",
                        self.stats.entries - logged.entries,
                        self.stats.trades - logged.trades,
                        self.stats.orders - logged.orders,
                        now - last_log,
                    )
                    last_log, logged = now, attrs.evolve(self.stats)

    def _settle_due(self) -> float:
        since = self._unsettled.since
        return math.inf if since is None else since + SETTLE_INTERVAL_S

    async def _settle(self) -> None:
        """Settle the candles of every trade committed since the last settle."""
        pending, self._unsettled = self._unsettled, Unsettled()
        if pending.since is None:
            return
        await self._retrying_db(
            "settle candles", settle_candles, pending.oldest_ms, pending.newest_ms
        )
        self.stats.settles += 1

    async def _write_batch(self, batch: Batch) -> None:
        rows = batch.merged
        bad = list(batch.bad)
        if rows.trades or rows.orders or rows.movements or rows.fills:
            try:
                await self._commit(rows)
            except _REFUSED_DATA as exc:
                # Not an outage: PostgreSQL refused the data. Find the entries at fault.
                log.error(
                    "batch refused (%s); writing its %d entries one by one", exc, len(batch.rows)
                )
                bad.extend(await self._write_singly(batch))
        # Settled before the acknowledgement when caught up: an acknowledged entry is then
        # in the klines too, unless more entries were waiting behind it.
        self._unsettled.add(rows, trio.current_time())
        if batch.caught_up or trio.current_time() >= self._settle_due():
            await self._settle()
        done = {entry_id for entry_id, _, _ in bad}
        ids = [entry_id for entry_id in batch.ids if entry_id not in done]
        if bad:
            await _finish("dead-letter events", self._dead_letter, bad)
        if ids:
            await _finish("acknowledge events", self._ack, ids)
        self._in_flight -= len(batch.ids)
        self.stats.entries += len(batch.ids)
        self.stats.trades += len(rows.trades)
        self.stats.orders += len(rows.orders)

    async def _commit(self, rows: EntryRows) -> None:
        await self._retrying_db("write batch", copy_rows, rows)

    async def _retrying_db(self, what: str, fn, *args) -> None:
        """``fn(conn, *args)`` on the writer's connection, retried while PostgreSQL is
        unavailable."""
        # The thread finishes the transaction even if we are cancelled meanwhile.
        await retry(
            self.db.run,
            fn,
            *args,
            on_failure=_log_failure(what),
            on_recovery=lambda: log.info("PostgreSQL is back (%s)", what),
        )

    async def _write_singly(self, batch: Batch) -> list[tuple[bytes, dict | None, str]]:
        refused = []
        for entry_id, fields, rows in batch.rows:
            try:
                await self._commit(merge([rows]))
            except _REFUSED_DATA as exc:
                refused.append((entry_id, fields, f"refused by PostgreSQL: {exc}"))
        return refused


def oldest_needed(client: redis.Redis, groups: list[dict]) -> tuple[int, int] | None:
    """The oldest entry of the events stream that any of ``groups`` (an XINFO GROUPS reply)
    still needs: its oldest pending entry, or the one after its last delivered. None without
    groups.

    The reply is a moment old: a group's pending entries may have been acknowledged since
    (XPENDING then has no oldest), and the entry after the last delivered it names is still a
    safe bound, since deliveries only move forward.
    """
    bound: tuple[int, int] | None = None
    for group in groups:
        oldest = None
        if group["pending"]:
            oldest = client.xpending(names.EVENT_STREAM, group["name"])["min"]
        if oldest is not None:
            needed = names.parse_id(oldest)
        else:
            ms, sequence = names.parse_id(group["last-delivered-id"])
            needed = (ms, sequence + 1)
        bound = needed if bound is None else min(bound, needed)
    return bound


async def retrying(what: str, fn, *args):
    """``await fn(*args)``, retried with back-off while Redis is unavailable."""
    return await retry(
        fn,
        *args,
        on_failure=_log_failure(what),
        on_recovery=lambda: log.info("Redis is back (%s)", what),
    )


def _log_failure(what: str) -> OnFailure:
    return lambda exc, delay, _: log.warning("cannot %s (%s); retrying in %.2fs", what, exc, delay)


async def _finish(what: str, fn, *args) -> None:
    """Acknowledge committed work, even when a shutdown has just been asked for.

    The first attempt is shielded (bounded by the Redis client's timeouts), so a clean stop
    does not leave committed entries pending; if Redis is down, retry like everything else (an
    entry left pending is only written again, harmlessly, after a restart).
    """
    with trio.CancelScope(shield=True):
        try:
            await fn(*args)
            return
        except ServiceUnavailable:
            pass
    await retrying(what, fn, *args)
