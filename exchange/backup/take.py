"""Take a backup while the exchange runs: nothing stops, nothing is written to the servers.

The parts must describe one moment of one exchange, although the engine, the db writer and
PostgreSQL each move on meanwhile. The order of the reads is what makes them agree:

1. the kept engine snapshots (every one is flushed: its events are in the events stream);
2. the lowest sequence the db writers have not committed yet (``first_unwritten_seq``);
3. a PostgreSQL snapshot, exported: it holds every event below that sequence, since those
   were committed before it was taken, and none beyond the engine's flushed mark read after it;
4. the newest snapshot below that sequence (:func:`~exchange.backup.manifest.choose_snapshot`;
   none yet: wait and start again), then the flushed mark, and the log from the snapshot to the
   mark;
5. the credentials, last, so every user the log created is in them;
6. ``pg_dump`` of the exported snapshot.

So the dump holds the history up to somewhere between the snapshot and the end of the log
copied, never beyond it: restored, the engine applies the log after its snapshot again with its
outputs, and the db writer rewrites the overlap (idempotent upserts) and writes the rest.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import time
from pathlib import Path

from exchange.backup import manifest as mf
from exchange.backup import postgres_part, redis_part
from exchange.backup.replay import replay
from exchange.engine import snapshot as snapshot_codec
from exchange.engine.snapshots_store import encode_record
from exchange.errors import ExchangeError
from exchange.markets import load_config
from exchange.settings import Settings

log = logging.getLogger(__name__)

WAIT_FOR_HISTORY_S = 60.0
_RETRY_S = 0.5


class BackupFailed(ExchangeError):
    """No consistent backup could be taken (the message says why); nothing was written."""


def hash_file(path: Path) -> mf.Part:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return mf.Part(size, digest.hexdigest())


def take_backup(
    settings: Settings, directory: Path, *, wait_s: float = WAIT_FOR_HISTORY_S
) -> mf.Manifest:
    """Back the exchange of ``settings`` up into ``directory`` (new, or empty); see the module
    doc. Raises BackupFailed."""
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise BackupFailed(f"{directory} is not empty: a backup goes into a new directory")
    directory.mkdir(parents=True, exist_ok=True)
    config = load_config(settings.markets_file)
    client = redis_part.connect(settings.redis_url)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            snapshots = redis_part.kept_snapshots(client)
            unwritten = redis_part.first_unwritten_seq(client)
            with postgres_part.open_snapshot(settings.database_url) as cut:
                chosen = mf.choose_snapshot([(s.log_id, s.seq) for s in snapshots], unwritten)
                stored = next((s for s in snapshots if (s.log_id, s.seq) == chosen), None)
                after = redis_part.START_ID if stored is None else stored.log_id
                until = redis_part.flushed_id(client)
                commands = None
                if stored is not None or not snapshots:
                    commands = redis_part.commands_between(client, after, until)
                if commands is not None:
                    credentials = list(redis_part.credentials(client))
                    postgres_part.dump(
                        settings.database_url, cut.snapshot_id, directory / mf.HISTORY_PART
                    )
                    break
            if time.monotonic() > deadline:
                raise BackupFailed(
                    "the history did not catch up with any kept engine snapshot within "
                    f"{wait_s:g}s (is bin/db running?); nothing was backed up"
                )
            log.info("waiting for the db writer to pass a snapshot (unwritten from %s)", unwritten)
            time.sleep(_RETRY_S)
        engine = replay(config, None if stored is None else encode_record(stored), commands)
        if stored is not None:
            (directory / mf.SNAPSHOT_PART).write_bytes(encode_record(stored))
        with open(directory / mf.COMMANDS_PART, "wb") as file:
            for entry in commands:
                file.write(redis_part.encode_entry(entry) + b"\n")
        with open(directory / mf.CREDENTIALS_PART, "wb") as file:
            for line in credentials:
                file.write(line + b"\n")
        parts = {
            name: hash_file(directory / name)
            for name in (*mf.ALWAYS_PARTS, mf.SNAPSHOT_PART)
            if (directory / name).exists()
        }
        manifest = mf.Manifest(
            created_at_ms=int(time.time() * 1000),
            engine={
                "snapshot": None
                if stored is None
                else {"log_id": after.decode(), "seq": stored.seq},
                "log_after": after.decode(),
                "log_until": (commands[-1][0] if commands else after).decode(),
                "commands": len(commands),
                "seq": engine.seq,
            },
            history={
                "seq": cut.seq,
                "storage": "plain" if cut.timescaledb is None else "timescaledb",
                "timescaledb": cut.timescaledb,
                "migrations": cut.migrations,
            },
            versions={
                "exchange": importlib.metadata.version("exchange"),
                "postgres": cut.server_version,
                "redis": redis_part.server_version(client),
                "engine_snapshot": snapshot_codec.VERSION,
            },
            parts=parts,
        )
        # The manifest last, through a rename: a directory without one is no backup.
        temporary = directory / (mf.MANIFEST + ".tmp")
        temporary.write_bytes(manifest.encode())
        os.replace(temporary, directory / mf.MANIFEST)
        return manifest
    finally:
        client.close()
