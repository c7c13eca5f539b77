"""``bin/db``: migrate, configure archival, then run the events consumer until stopped.

The program around :class:`~exchange.db.consumer.EventWriter`: it waits for PostgreSQL to
apply the migrations, sets the history's archival policies for the storage mode it finds, and
connects the consumer to Redis and PostgreSQL; SIGINT and SIGTERM stop it cleanly.
"""

from __future__ import annotations

import functools
import logging
import time

import psycopg
import trio

from exchange import bus, names
from exchange import settings as settings_module
from exchange.db import archival
from exchange.db.consumer import EventWriter, retrying
from exchange.db.copy_batch import prepare_connection
from exchange.db.migrate import migrate, storage_mode
from exchange.errors import ConfigError
from exchange.history import pg
from exchange.markets import load_config
from exchange.programs import cancel_on_stop_signal, configure_logging, tune_gc
from exchange.retry import retry
from exchange.settings import Settings

log = logging.getLogger(__name__)


async def _migrate(database_url: str) -> str:
    """Apply pending migrations, waiting for PostgreSQL if it is not up yet; return the mode."""

    def migrate_and_read_mode() -> tuple[list[str], str]:
        return migrate(database_url), storage_mode(database_url)

    applied, mode = await retry(
        trio.to_thread.run_sync,
        migrate_and_read_mode,
        retry_on=psycopg.OperationalError,
        on_failure=lambda exc, delay, _: log.warning(
            "PostgreSQL not reachable (%s); retrying in %.2fs", exc, delay
        ),
    )
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    return mode


async def run(settings: Settings, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Migrate, then write events until cancelled. ``task_status.started(stats)`` once consuming."""
    mode = await _migrate(settings.database_url)
    log.info("storage: %s", mode if mode != "postgresql" else "plain PostgreSQL (no TimescaleDB)")
    archived = await trio.to_thread.run_sync(
        functools.partial(
            archival.configure,
            settings.database_url,
            settings,
            timescaledb=mode.startswith("timescaledb"),
        )
    )
    log.info("history archival: %s", archived.describe())
    redis_bridge = bus.RedisBridge(settings.redis_url, max_threads=2)
    db = pg.DedicatedConnection(
        settings.database_url,
        timeout_s=settings.db_write_timeout_s,
        connect_timeout_s=settings.db_connect_timeout_s,
        application="exchange-db-writer",
        setup=prepare_connection,
    )
    writer = EventWriter(
        redis_bridge,
        db,
        consumer=settings.db_consumer,
        read_count=settings.db_read_count,
        linger_s=settings.db_linger_ms / 1000,
        claim_idle_s=settings.db_claim_idle_s,
        config=load_config(settings.markets_file),
        ledger=settings.db_ledger,
    )
    try:
        await retrying("create the consumer group", writer.ensure_group)
        log.info(
            "consuming %s as %s/%s", names.EVENT_STREAM, names.EVENTS_GROUP, settings.db_consumer
        )
        task_status.started(writer.stats)
        await writer.run()
    finally:
        with trio.CancelScope(shield=True):
            await db.aclose()
            redis_bridge.close()


async def serve(settings: Settings) -> None:
    """Run the writer until SIGINT or SIGTERM, then stop cleanly."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(cancel_on_stop_signal, nursery.cancel_scope, log)
        started = time.monotonic()
        await nursery.start(run, settings)
        log.info("db writer ready in %.2fs", time.monotonic() - started)


def main() -> int:
    """``bin/db``: settings from the environment, then :func:`serve`. Returns the exit code."""
    configure_logging("db")
    try:
        config = settings_module.load()
    except ConfigError as exc:
        log.error("bad configuration: %s", exc)
        return 2
    tune_gc()
    code = 0
    try:
        trio.run(serve, config)
    except* ConfigError as group:  # archival settings, checked once the storage mode is known
        log.error("bad configuration: %s", group.exceptions[0])
        code = 2
    return code
