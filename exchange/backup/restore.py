"""Restore a backup into empty servers: verify everything first, then write.

Refused, with every reason and nothing changed, when: the manifest is missing, unreadable or of
a newer format; a part is missing, of the wrong size or fails its checksum; the snapshot cannot
be read by this version or the log does not lead to the manifest's engine sequence; the target
Redis or database is not empty. Then PostgreSQL is restored (``pg_restore``), then Redis (log,
credentials, and last the snapshot with the flushed mark at it). Start the exchange on the
servers afterwards: the engine recovers from the snapshot and applies the log after it, and the
db writer brings the history up to the engine from those events.
"""

from __future__ import annotations

from pathlib import Path

from exchange.backup import manifest as mf
from exchange.backup import postgres_part, redis_part
from exchange.backup.replay import ReplayError, replay
from exchange.backup.take import hash_file
from exchange.engine.snapshots_store import decode_record
from exchange.errors import ExchangeError
from exchange.markets import load_config
from exchange.settings import Settings


class BackupRefused(ExchangeError):
    """The backup does not verify, or the target is not empty (the message lists why)."""


def verify(settings: Settings, directory: Path) -> tuple[mf.Manifest, list, list[bytes]]:
    """The manifest, commands and credential lines of a backup that verifies.

    Raises BackupRefused listing every problem found.
    """
    directory = Path(directory)
    try:
        raw = (directory / mf.MANIFEST).read_bytes()
    except OSError as exc:
        raise BackupRefused(
            f"{directory} holds no readable {mf.MANIFEST} ({exc.strerror})"
        ) from None
    try:
        manifest = mf.decode(raw)
    except mf.BadManifest as exc:
        raise BackupRefused(str(exc)) from None
    found = {
        name: hash_file(directory / name) for name in manifest.parts if (directory / name).is_file()
    }
    problems = mf.problems(manifest, found)
    if problems:
        raise BackupRefused("the backup does not verify: " + "; ".join(problems))
    commands = [
        redis_part.decode_entry(line)
        for line in (directory / mf.COMMANDS_PART).read_bytes().splitlines()
    ]
    credential_lines = (directory / mf.CREDENTIALS_PART).read_bytes().splitlines()
    record = None
    if manifest.engine["snapshot"] is not None:
        record = (directory / mf.SNAPSHOT_PART).read_bytes()
    try:
        engine = replay(load_config(settings.markets_file), record, commands)
    except ReplayError as exc:
        raise BackupRefused(str(exc)) from None
    if engine.seq != manifest.engine["seq"]:
        raise BackupRefused(
            f"the backup's log leads to engine sequence {engine.seq}, the manifest says "
            f"{manifest.engine['seq']} (another markets file, or another version's engine?)"
        )
    return manifest, commands, credential_lines


def restore_backup(settings: Settings, directory: Path) -> mf.Manifest:
    """Restore ``directory`` into the (empty) Redis and database of ``settings``.

    Raises BackupRefused before changing anything; PostgresToolError when pg_restore fails.
    """
    directory = Path(directory)
    manifest, commands, credential_lines = verify(settings, directory)
    client = redis_part.connect(settings.redis_url)
    try:
        not_empty = []
        if not redis_part.is_empty(client):
            not_empty.append("the Redis at REDIS_URL holds keys")
        if not postgres_part.is_empty(settings.database_url):
            not_empty.append("the database at DATABASE_URL holds tables or extensions")
        if not_empty:
            raise BackupRefused(
                "a backup restores only into empty servers: " + "; ".join(not_empty)
            )
        postgres_part.restore(
            settings.database_url, directory / mf.HISTORY_PART, manifest.history["timescaledb"]
        )
        stored = None
        if manifest.engine["snapshot"] is not None:
            stored = decode_record((directory / mf.SNAPSHOT_PART).read_bytes())
        redis_part.restore(client, stored, commands, credential_lines)
    finally:
        client.close()
    return manifest
