"""The backup's Redis side: read the engine's snapshot, log and the credentials; write them back.

Blocking redis-py, for a command-line tool (not a trio program). Reading never writes: the
engine and the db writer go on while it runs. Every name comes from :mod:`exchange.names`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import orjson
import redis

from exchange.engine.snapshots_store import StoredSnapshot, decode_record, encode_record
from exchange.names import (
    COMMAND_STREAM,
    CREDENTIALS_PREFIX,
    EVENT_STREAM,
    EVENTS_FIELD,
    EVENTS_GROUP,
    FLUSHED_KEY,
    SNAPSHOT_INDEX_KEY,
    snapshot_key,
)

Entry = tuple[bytes, dict[bytes, bytes]]
START_ID = b"0-0"
_PAGE = 10_000


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5)


def kept_snapshots(client: redis.Redis) -> list[StoredSnapshot]:
    """The kept snapshots that can be read, newest first."""
    out = []
    for log_id in client.lrange(SNAPSHOT_INDEX_KEY, 0, -1):
        record = client.get(snapshot_key(log_id.decode()))
        if record is None:
            continue
        try:
            stored = decode_record(record)
        except ValueError:
            continue
        if stored.log_id == log_id:
            out.append(stored)
    return out


def first_unwritten_seq(client: redis.Redis) -> int | None:
    """The lowest engine sequence whose events the db writers have not acknowledged (None when
    they have acknowledged every entry of the events stream).

    The writers acknowledge an entry only after its rows committed, so every event below this
    sequence is in PostgreSQL *now*, and in any PostgreSQL snapshot taken after this call.
    """
    try:
        groups = client.xinfo_groups(EVENT_STREAM)
    except redis.ResponseError:  # no events stream: nothing was ever written, nothing waits
        groups = []
    group = next((g for g in groups if _text(g["name"]) == EVENTS_GROUP), None)
    if group is None:
        start: bytes | str = "-"  # no writer yet: everything in the stream is unwritten
    elif group["pending"]:
        start = client.xpending(EVENT_STREAM, EVENTS_GROUP)["min"]
    else:
        start = b"(" + _bytes(group["last-delivered-id"])
    entries = client.xrange(EVENT_STREAM, min=start, max="+", count=1)
    if not entries:
        return None
    return min(event["seq"] for event in orjson.loads(entries[0][1][EVENTS_FIELD]))


def flushed_id(client: redis.Redis) -> bytes:
    """The id of the last command whose outputs are in Redis (``0-0`` before any)."""
    return client.get(FLUSHED_KEY) or START_ID


def commands_between(client: redis.Redis, after: bytes, until: bytes) -> list[Entry] | None:
    """The command log's entries in ``(after, until]``; None when the log no longer starts at
    ``after`` (trimmed below it since it was chosen)."""
    if after == START_ID:
        info = client.xinfo_stream(COMMAND_STREAM) if client.exists(COMMAND_STREAM) else None
        if info is not None and info.get("entries-added", info["length"]) > info["length"]:
            return None  # the log was trimmed: it needs a snapshot to start from
    elif not client.xrange(COMMAND_STREAM, min=after, max=after):
        return None
    if until == START_ID:
        return []
    out: list[Entry] = []
    cursor = b"(" + after
    while True:
        page = client.xrange(COMMAND_STREAM, min=cursor, max=until, count=_PAGE)
        out.extend(page)
        if len(page) < _PAGE:
            return out
        cursor = b"(" + page[-1][0]


def credentials(client: redis.Redis) -> Iterator[bytes]:
    """Every credentials key as one JSON line (its type and value, bytes in base64)."""
    for key in sorted(client.scan_iter(match=CREDENTIALS_PREFIX + "*", count=1000)):
        kind = _text(client.type(key))
        if kind == "hash":
            value = {_b64(k): _b64(v) for k, v in client.hgetall(key).items()}
        elif kind == "set":
            value = sorted(_b64(m) for m in client.smembers(key))
        elif kind == "string":
            value = _b64(client.get(key) or b"")
        else:
            raise ValueError(f"unexpected {kind} at credentials key {key!r}")
        yield orjson.dumps({"key": _b64(key), "type": kind, "value": value})


def encode_entry(entry: Entry) -> bytes:
    entry_id, fields = entry
    return orjson.dumps(
        {"id": entry_id.decode(), "fields": {_b64(k): _b64(v) for k, v in fields.items()}}
    )


def decode_entry(line: bytes) -> Entry:
    data = orjson.loads(line)
    return data["id"].encode(), {_unb64(k): _unb64(v) for k, v in data["fields"].items()}


def is_empty(client: redis.Redis) -> bool:
    return client.dbsize() == 0


def restore(
    client: redis.Redis,
    snapshot: StoredSnapshot | None,
    commands: list[Entry],
    credential_lines: list[bytes],
) -> None:
    """Write a backup's Redis part into an empty Redis.

    The flushed mark is set to the snapshot's log id, not the log's end: the restored engine
    then applies the commands after the snapshot with their outputs, so their events reach the
    db writer again and the history catches up (its upserts ignore what the dump already has).
    The snapshot, its index and the mark go last, in one transaction.
    """
    for start in range(0, len(commands), _PAGE):
        with client.pipeline(transaction=False) as pipe:
            for entry_id, fields in commands[start : start + _PAGE]:
                pipe.xadd(COMMAND_STREAM, fields, id=entry_id)
            pipe.execute()
    with client.pipeline(transaction=False) as pipe:
        for line in credential_lines:
            data = orjson.loads(line)
            key = _unb64(data["key"])
            if data["type"] == "hash":
                pipe.hset(key, mapping={_unb64(k): _unb64(v) for k, v in data["value"].items()})
            elif data["type"] == "set":
                pipe.sadd(key, *(_unb64(m) for m in data["value"]))
            else:
                pipe.set(key, _unb64(data["value"]))
        pipe.execute()
    if snapshot is not None:
        with client.pipeline(transaction=True) as pipe:
            pipe.set(snapshot_key(snapshot.log_id.decode()), encode_record(snapshot))
            pipe.rpush(SNAPSHOT_INDEX_KEY, snapshot.log_id)
            pipe.set(FLUSHED_KEY, snapshot.log_id)
            pipe.execute()


def server_version(client: redis.Redis) -> str:
    return str(client.info("server")["redis_version"])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value
