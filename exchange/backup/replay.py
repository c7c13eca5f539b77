"""Replay a backup's snapshot and commands through the engine core, as the engine will.

Taking a backup replays it once to learn the engine sequence it restores (the manifest's
``engine.seq``); restoring replays it again before touching anything, so a snapshot this
version cannot read, or a log that does not lead where the manifest says, is refused up front.
Pure: the core, the snapshot codec and the command codec, no I/O.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from exchange import codec
from exchange.engine import snapshot
from exchange.engine.core import Engine
from exchange.engine.snapshots_store import decode_record
from exchange.markets import MarketConfig
from exchange.models import Command
from exchange.names import BODY_FIELD, id_ms

Entry = tuple[bytes, dict[bytes, bytes]]


class ReplayError(ValueError):
    """The snapshot cannot be read by this version, or is not the one the manifest names."""


def replay(
    config: MarketConfig, snapshot_record: bytes | None, commands: Iterable[Entry]
) -> Engine:
    """The engine after the snapshot record (None: a fresh engine) and then ``commands``.

    As :class:`~exchange.engine.service.EngineService` applies them: an entry whose body is no
    command takes no sequence number, and a command the core fails on still takes its own.
    """
    engine = Engine(config)
    if snapshot_record is not None:
        try:
            engine = snapshot.loads(decode_record(snapshot_record).blob, config)
        except (ValueError, snapshot.SnapshotError) as exc:
            raise ReplayError(f"the engine snapshot cannot be read: {exc}") from None
    for entry_id, fields in commands:
        try:
            command = codec.decode(fields[BODY_FIELD])
        except Exception:  # noqa: BLE001 - malformed entries are skipped, as the engine does
            continue
        if not isinstance(command, Command):
            continue
        with contextlib.suppress(Exception):  # the engine answers these with a rejection
            engine.apply(command, seq=engine.seq + 1, ts=id_ms(entry_id))
    return engine
