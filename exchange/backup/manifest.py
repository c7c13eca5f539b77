"""What a backup holds and whether it can be trusted (pure: no I/O).

A backup is a directory of parts and a ``manifest.json`` naming each with its size and SHA-256::

    manifest.json       this record: format, version, positions, versions, parts
    engine.snapshot     the engine's snapshot record (header line + state), absent when the
                        backup starts from the log's beginning (no snapshot had been taken)
    commands.jsonl      the command log after the snapshot up to ``engine.log_until``
    credentials.jsonl   the users and API keys (exchange.credentials), key by key
    history.pgdump      PostgreSQL, ``pg_dump --format=custom``

:func:`problems` says everything wrong with a backup as sentences (an empty list: it verifies);
the caller hashes the files, this module judges. A manifest of a newer format version is refused
rather than half understood.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import orjson

FORMAT = "exchange-backup"
VERSION = 1
MANIFEST = "manifest.json"
SNAPSHOT_PART = "engine.snapshot"
COMMANDS_PART = "commands.jsonl"
CREDENTIALS_PART = "credentials.jsonl"
HISTORY_PART = "history.pgdump"
ALWAYS_PARTS = (COMMANDS_PART, CREDENTIALS_PART, HISTORY_PART)


@attrs.frozen
class Part:
    """A file of the backup as hashed: its size and SHA-256 (hex)."""

    bytes: int
    sha256: str


@attrs.frozen
class Manifest:
    """The manifest's record. ``engine``, ``history`` and ``versions`` are JSON objects:

    - ``engine``: ``snapshot`` (``{"log_id", "seq"}`` or None), ``log_after`` (the log id the
      commands follow), ``log_until`` (the last command's id), ``commands`` (how many), ``seq``
      (the engine sequence once they are applied: the state the backup restores);
    - ``history``: ``seq`` (the newest engine sequence with rows in the dump, None when empty),
      ``storage`` (``plain`` or ``timescaledb``), ``timescaledb`` (its version or None),
      ``migrations`` (the names applied);
    - ``versions``: ``exchange``, ``postgres``, ``redis``, ``engine_snapshot``.
    """

    created_at_ms: int
    engine: dict[str, Any]
    history: dict[str, Any]
    versions: dict[str, Any]
    parts: dict[str, Part]
    format: str = FORMAT
    version: int = VERSION

    def encode(self) -> bytes:
        return orjson.dumps(attrs.asdict(self), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    @property
    def required_parts(self) -> tuple[str, ...]:
        has_snapshot = self.engine.get("snapshot") is not None
        return ALWAYS_PARTS + ((SNAPSHOT_PART,) if has_snapshot else ())


class BadManifest(ValueError):
    """The manifest is not one this version can read (the message says why)."""


def decode(raw: bytes) -> Manifest:
    """Raises BadManifest for anything but a manifest of a format version we read."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadManifest(f"{MANIFEST} is not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BadManifest(f"{MANIFEST} is not an exchange backup's manifest")
    version = data.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise BadManifest(
            f"the backup's format version {version!r} is newer than this exchange reads "
            f"({VERSION}): restore it with the version that made it "
            f"({data.get('versions', {}).get('exchange', '?')})"
        )
    try:
        parts = {
            name: Part(int(part["bytes"]), str(part["sha256"]))
            for name, part in data["parts"].items()
        }
        return Manifest(
            created_at_ms=int(data["created_at_ms"]),
            engine=dict(data["engine"]),
            history=dict(data["history"]),
            versions=dict(data["versions"]),
            parts=parts,
            format=FORMAT,
            version=version,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadManifest(f"{MANIFEST} is incomplete or malformed ({exc!r})") from None


def problems(manifest: Manifest, found: Mapping[str, Part]) -> list[str]:
    """Everything that keeps ``found`` (the backup's files as hashed) from being the backup
    ``manifest`` describes; empty when it verifies."""
    out = []
    for name in manifest.required_parts:
        if name not in manifest.parts:
            out.append(f"the manifest lists no {name}")
    for name, part in sorted(manifest.parts.items()):
        got = found.get(name)
        if got is None:
            out.append(f"{name} is missing")
        elif got.bytes != part.bytes:
            out.append(f"{name} has {got.bytes} bytes, the manifest says {part.bytes}")
        elif got.sha256 != part.sha256:
            out.append(f"{name} does not match its checksum (corrupted)")
    return out


def choose_snapshot(
    snapshots: list[tuple[bytes, int]], first_unwritten_seq: int | None
) -> tuple[bytes, int] | None:
    """The newest snapshot ``(log_id, seq)`` whose every event the history already holds.

    ``first_unwritten_seq``: the lowest engine sequence with events the db writer has not
    committed (None: it has committed all). A backup must start from a snapshot at or below
    the dump's position, or the history would miss what happened between them; it may start
    below it, the restored writer rewrites the overlap idempotently.
    """
    usable = [
        (log_id, seq)
        for log_id, seq in snapshots
        if first_unwritten_seq is None or seq < first_unwritten_seq
    ]
    return max(usable, key=lambda snapshot: snapshot[1], default=None)
