"""Apply ``sql/migrations/NNNN_*.sql`` in order, once each: ``python -m exchange.db.migrate``.

Each file runs in its own transaction together with its row in ``schema_migrations`` (name and
SHA-256), so a file is either applied and recorded or neither. A session-level advisory lock
serialises migrators: a second one (another ``bin/db`` starting, ``just migrate`` run twice)
waits, then finds everything applied and does nothing. A recorded file whose text has changed
since is refused: migrations are never edited once landed; a change is a new file.

Whether TimescaleDB is in use is decided by the first migration (the extension is created when
the server has it) and reported by :func:`storage_mode`.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from pathlib import Path

import attrs
import psycopg

from exchange import settings as settings_module
from exchange.errors import ConfigError, ExchangeError
from exchange.history import statements
from exchange.history.pg import TCP_OPTIONS

log = logging.getLogger(__name__)

# The repository's migrations; EXCHANGE_MIGRATIONS_DIR (Settings.migrations_dir) overrides
# (an installed copy, tests).
DEFAULT_MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "sql" / "migrations"
_NAME_DIGITS = 4


class MigrationError(ExchangeError):
    """The migrations on disk and those recorded in the database disagree, or one failed."""


@attrs.frozen
class Migration:
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations_dir() -> Path:
    return Path(settings_module.load().migrations_dir or DEFAULT_MIGRATIONS_DIR)


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """The ``NNNN_name.sql`` files of ``directory``, in order.

    Raises:
        MigrationError: a file is misnamed or two share a number.
    """
    directory = directory or migrations_dir()
    if not directory.is_dir():
        raise MigrationError(f"no migrations directory at {directory}")
    found: list[Migration] = []
    numbers: set[str] = set()
    for path in sorted(directory.glob("*.sql")):
        number, _, rest = path.name.partition("_")
        if len(number) != _NAME_DIGITS or not number.isdigit() or not rest:
            raise MigrationError(f"migration {path.name} is not named NNNN_description.sql")
        if number in numbers:
            raise MigrationError(f"two migrations share the number {number}")
        numbers.add(number)
        found.append(Migration(path.name, path.read_text()))
    return found


# A frozen or partitioned server must not hang the writer's start: the connection is bounded and
# the socket gives up on a peer that stopped answering (keepalives, tcp_user_timeout). No
# statement timeout: waiting for another migrator's lock and a long migration are legitimate.
CONNECT_TIMEOUT_S = 5


def _connect(database_url: str) -> psycopg.Connection:
    return psycopg.connect(
        database_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, **TCP_OPTIONS
    )


def migrate(database_url: str, directory: Path | None = None) -> list[str]:
    """Apply the pending migrations; return the names applied (empty when up to date).

    Raises:
        MigrationError: an applied file was edited, or one is recorded but missing on disk.
        psycopg.Error: the database refused a statement (that file's transaction is rolled back)
            or cannot be reached.
    """
    migrations = load_migrations(directory)
    applied: list[str] = []
    with _connect(database_url) as conn:
        key = {"key": statements.MIGRATION_LOCK_KEY}
        conn.execute(statements.LOCK_MIGRATIONS, key)
        try:
            conn.execute(statements.CREATE_MIGRATIONS_TABLE)
            recorded = dict(conn.execute(statements.APPLIED_MIGRATIONS).fetchall())
            _check_recorded(migrations, recorded)
            for migration in migrations:
                if migration.name in recorded:
                    continue
                log.info("applying migration %s", migration.name)
                with conn.transaction():
                    # No parameters: psycopg sends the file as one simple query, so a file may
                    # hold many statements.
                    conn.execute(migration.sql)
                    conn.execute(
                        statements.RECORD_MIGRATION,
                        {"name": migration.name, "sha256": migration.sha256},
                    )
                applied.append(migration.name)
        finally:
            conn.execute(statements.UNLOCK_MIGRATIONS, key)
    return applied


def _check_recorded(migrations: list[Migration], recorded: dict[str, str]) -> None:
    on_disk = {migration.name: migration for migration in migrations}
    for name, sha256 in recorded.items():
        migration = on_disk.get(name)
        if migration is None:
            raise MigrationError(f"migration {name} is applied but missing from disk")
        if migration.sha256 != sha256:
            raise MigrationError(
                f"migration {name} changed after it was applied; add a new migration instead"
            )


def storage_mode(database_url: str) -> str:
    """``"timescaledb <version>"`` when the extension is installed, else ``"postgresql"``."""
    with _connect(database_url) as conn:
        row = conn.execute(statements.TIMESCALE_VERSION).fetchone()
    return f"timescaledb {row[0]}" if row else "postgresql"


def main() -> int:
    """``just migrate``: migrate ``$DATABASE_URL`` and report what was done."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        url = settings_module.load().database_url
        applied = migrate(url)
        mode = storage_mode(url)
    except (ConfigError, MigrationError, psycopg.Error) as exc:
        log.error("migration failed: %s", exc)
        return 1
    log.info("%d migration(s) applied; storage: %s", len(applied), mode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
