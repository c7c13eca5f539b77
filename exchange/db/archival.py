"""History archival: old trade and order chunks compressed, old trades optionally dropped.

On TimescaleDB the writer sets the policies at start from its settings
(``configure_history_archival`` in ``sql/migrations/0004_*``), and TimescaleDB's job scheduler
runs them: chunks whose whole range is older than ``HISTORY_COMPRESS_AFTER_DAYS`` (default 7)
move to the columnstore, and with ``HISTORY_RETAIN_DAYS`` trade chunks older than that are
dropped while the candles, which the refresh policies then never revisit, are kept. Orders
are never dropped: an old chunk may hold an order still resting on the book.

Plain PostgreSQL has neither a columnstore nor chunks to drop, so asking it for either is
refused with a :class:`~exchange.errors.ConfigError`, never quietly ignored; the default
compression age, which nobody asked for, simply does not apply there.
"""

from __future__ import annotations

from datetime import timedelta

import attrs
import psycopg

from exchange.errors import ConfigError
from exchange.history import statements
from exchange.settings import Settings

DEFAULT_COMPRESS_AFTER_DAYS = 7
# The daily candles' refresh policy must span two days between its start (the retention age)
# and its end (one day ago).
MIN_RETAIN_DAYS = 3


@attrs.frozen
class Archival:
    """What to apply: ``None`` turns a policy off."""

    compress_after: timedelta | None
    retain_for: timedelta | None

    def describe(self) -> str:
        compress = f"after {self.compress_after.days} days" if self.compress_after else "off"
        retain = f"{self.retain_for.days} days" if self.retain_for else "all"
        return f"compression {compress}, trades kept: {retain}"


def plan(settings: Settings, *, timescaledb: bool) -> Archival:
    """The policies ``settings`` ask for on a database with or without TimescaleDB.

    Raises:
        ConfigError: a value out of range, or archival asked of plain PostgreSQL.
    """
    compress_days, retain_days = settings.history_compress_after_days, settings.history_retain_days
    if compress_days is not None and compress_days < 0:
        raise ConfigError(f"HISTORY_COMPRESS_AFTER_DAYS must be 0 or more, not {compress_days}")
    if retain_days != 0 and retain_days < MIN_RETAIN_DAYS:
        raise ConfigError(
            f"HISTORY_RETAIN_DAYS must be 0 (keep everything) or at least {MIN_RETAIN_DAYS},"
            f" not {retain_days}"
        )
    if not timescaledb:
        if compress_days or retain_days:
            raise ConfigError(
                "HISTORY_COMPRESS_AFTER_DAYS and HISTORY_RETAIN_DAYS need TimescaleDB (its"
                " columnstore and chunk retention); this database is plain PostgreSQL, which"
                " keeps all history uncompressed. Unset them, or use a server with TimescaleDB."
            )
        return Archival(None, None)
    if compress_days is None:
        compress_days = DEFAULT_COMPRESS_AFTER_DAYS
    return Archival(
        timedelta(days=compress_days) if compress_days else None,
        timedelta(days=retain_days) if retain_days else None,
    )


def configure(database_url: str, settings: Settings, *, timescaledb: bool) -> Archival:
    """Apply :func:`plan` to the database (idempotent; nothing to apply on plain PostgreSQL).

    Raises:
        ConfigError: see :func:`plan`.
        psycopg.Error: the database refused the policies or cannot be reached.
    """
    archival = plan(settings, timescaledb=timescaledb)
    if timescaledb:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                statements.CONFIGURE_ARCHIVAL,
                {"compress_after": archival.compress_after, "retain_for": archival.retain_for},
            )
    return archival
