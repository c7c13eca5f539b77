"""The backup's PostgreSQL side: a dump at an exported snapshot, and its restore.

:func:`open_snapshot` starts a repeatable-read transaction and exports its snapshot, so the
history position read in it (:data:`~exchange.history.statements.HISTORY_POSITION`) and the
``pg_dump --snapshot`` run while it stays open see the very same data. The dump is in custom
format (``pg_dump -Fc``); ``pg_dump`` / ``pg_restore`` come from ``PATH``, else from the newest
``/usr/lib/postgresql/<version>/bin`` (they must be at least the server's major version).

TimescaleDB: a dump of a TimescaleDB database restores only into the same extension version,
between ``timescaledb_pre_restore()`` and ``timescaledb_post_restore()`` (Timescale's recipe).
"""

from __future__ import annotations

import contextlib
import glob
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import attrs
import psycopg
from psycopg import sql

from exchange.errors import ExchangeError
from exchange.history import statements


class PostgresToolError(ExchangeError):
    """pg_dump or pg_restore failed or cannot be found (the message has its output)."""


@attrs.frozen
class HistoryCut:
    """What the exported snapshot holds."""

    snapshot_id: str
    seq: int | None
    server_version: str
    timescaledb: str | None
    migrations: list[str]


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is not None:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    if not candidates:
        raise PostgresToolError(f"{name} not found (install PostgreSQL's client programs)")
    return candidates[-1]


@contextlib.contextmanager
def open_snapshot(url: str) -> Iterator[HistoryCut]:
    """An exported snapshot of the database, open until the block ends."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statements.BEGIN_EXPORTED_SNAPSHOT)
        snapshot_id = conn.execute(statements.EXPORT_SNAPSHOT).fetchone()[0]
        seq = conn.execute(statements.HISTORY_POSITION).fetchone()[0]
        version = conn.execute(statements.SERVER_VERSION).fetchone()[0]
        timescaledb = conn.execute(statements.TIMESCALE_VERSION).fetchone()
        migrations = [row[0] for row in conn.execute(statements.APPLIED_MIGRATIONS)]
        try:
            yield HistoryCut(
                snapshot_id,
                None if seq is None else int(seq),
                version,
                None if timescaledb is None else timescaledb[0],
                migrations,
            )
        finally:
            conn.execute(statements.END_EXPORTED_SNAPSHOT)


def dump(url: str, snapshot_id: str, path: Path) -> None:
    _run([tool("pg_dump"), "--format=custom", f"--snapshot={snapshot_id}", "-f", str(path), url])


def is_empty(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(statements.DATABASE_CONTENTS).fetchone()[0] == 0


def restore(url: str, path: Path, timescaledb: str | None) -> None:
    """Restore the dump at ``path`` into the empty database at ``url``."""
    command = [tool("pg_restore"), "--exit-on-error", "--no-owner", "-d", url, str(path)]
    if timescaledb is None:
        _run([*command, "--single-transaction"])
        return
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute(
                sql.SQL(statements.CREATE_TIMESCALE_VERSION).format(
                    version=sql.Literal(timescaledb)
                )
            )
        except psycopg.Error as exc:
            raise PostgresToolError(
                f"the backup's history needs TimescaleDB {timescaledb} on the target server "
                f"(installed and preloaded): {exc}"
            ) from None
        conn.execute(statements.TIMESCALE_PRE_RESTORE)
        try:
            _run(command)
        finally:
            conn.execute(statements.TIMESCALE_POST_RESTORE)


def _run(command: list[str]) -> None:
    result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0:
        shown = " ".join(c for c in command if "://" not in c)  # no URL (it may hold a password)
        raise PostgresToolError(f"{shown} failed ({result.returncode}):\n{result.stderr.strip()}")
