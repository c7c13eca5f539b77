"""The engine program's wiring: settings → Redis adapters → :class:`EngineService`.

``bin/engine`` runs :func:`run` under its signal handling; the tests start it the same way
(``await nursery.start(program.run, settings)``).
"""

from __future__ import annotations

import os
from typing import Any

import trio

from exchange.bus import RedisBridge
from exchange.engine.redis_log import RedisLog
from exchange.engine.service import EngineService
from exchange.engine.snapshots_store import SnapshotStore
from exchange.markets import load_config
from exchange.settings import Settings


async def run(settings: Settings, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Recover, then serve until cancelled (see :mod:`exchange.engine.service`).

    Raises ``LogRolledBack`` or ``UnrecoverableLog`` when the log cannot be served as it is.
    """
    config = load_config(settings.markets_file)
    bus = RedisBridge(settings.redis_url, max_threads=2)
    command_log = RedisLog(bus, events_maxlen=settings.events_maxlen)
    try:
        service = EngineService(
            config,
            command_log,
            SnapshotStore(bus, kept=settings.snapshots_kept),
            batch_size=settings.command_batch,
            snapshot_every_commands=settings.snapshot_every_commands,
            snapshot_every_s=settings.snapshot_every_s,
            # Snapshots in a forked child where the platform forks (copy-on-write, like BGSAVE).
            background_snapshots=hasattr(os, "fork"),
        )
        await service.recover()
        await service.serve(task_status=task_status)
    finally:
        await command_log.clear_heartbeat()
        bus.close()
