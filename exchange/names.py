"""Every Redis name the programs share (streams, keys, channels, fields), and stream ids.

How the programs talk (all names below are defined here and nowhere else)::

    api ──XADD──► exchange:commands ──XREAD──► engine ──one MULTI/EXEC per batch──┐
    api ──XADD──► exchange:queries  ──XREAD──►        │                           │
    api ◄─XREAD── exchange:replies:<instance> ◄───────┤ replies, by request id    │
    db  ◄─XREADGROUP─ exchange:events ◄───────────────┤ one entry per batch       │
    ws  ◄─SUBSCRIBE── exchange:md:<symbol>, exchange:user:<user_id> ◄─ PUBLISH ───┘
                      exchange:engine:heartbeat, :flushed, :snapshots, :snapshot:<id>

A command or query entry has three fields: ``body`` (``codec.encode(record)``), ``reply_to`` (the
API instance id; absent means nobody waits) and ``req`` (the request id, unique per instance).
The command stream is the durable log: its entry id orders commands and its millisecond part is
the command's timestamp. The engine trims it only below its oldest kept snapshot. The db writers
read the events stream as one consumer group and move an entry they can never write to a
dead-letter stream.

Pure (strings and integers only), so the engine's outputs can name channels without reaching
the Redis client (:mod:`exchange.bus`).
"""

from __future__ import annotations

COMMAND_STREAM = "exchange:commands"
QUERY_STREAM = "exchange:queries"
EVENT_STREAM = "exchange:events"
# The consumer group of the db writers on EVENT_STREAM.
EVENTS_GROUP = "db-writer"
# Events entries the db writer can never write, kept for a person to look at (fields + "error").
DEAD_LETTER_STREAM = EVENT_STREAM + ":dead"
HEARTBEAT_KEY = "exchange:engine:heartbeat"
# The id of the last command whose replies, events and publishes are in Redis (see service.py).
FLUSHED_KEY = "exchange:engine:flushed"
SNAPSHOT_INDEX_KEY = "exchange:engine:snapshots"
SNAPSHOT_KEY_PREFIX = "exchange:engine:snapshot:"
REPLY_STREAM_PREFIX = "exchange:replies:"
MARKET_CHANNEL_PREFIX = "exchange:md:"
USER_CHANNEL_PREFIX = "exchange:user:"
# Users, API keys and ED25519 keys (exchange.credentials lays out the keys under it).
CREDENTIALS_PREFIX = "exchange:credentials:"

# Fields of command and query entries, and of event entries.
BODY_FIELD = b"body"
REPLY_TO_FIELD = b"reply_to"
REQUEST_ID_FIELD = b"req"
EVENTS_FIELD = b"events"

# Queries are not a log: keep only the recent ones (approximate trimming is cheap).
QUERY_STREAM_MAXLEN = 10_000
# Replies older than this are useless (every waiter has timed out); reply streams are trimmed to
# it and expire after it when their API instance is gone.
REPLY_TTL_MS = 60_000
# The engine refreshes its heartbeat at least every second; the key expires after this, so a
# missing key means "no engine".
HEARTBEAT_TTL_MS = 3_000


# What each API and ws process's rate-limit keys spent lately (exchange.ratelimit_share).
RATE_LIMIT_CHANNEL = "exchange:ratelimit:spent"


def market_channel(symbol: str) -> str:
    """Pub/sub channel of a market's depth and trade events."""
    return MARKET_CHANNEL_PREFIX + symbol


def user_channel(user_id: str) -> str:
    """Pub/sub channel of one user's order and balance events."""
    return USER_CHANNEL_PREFIX + user_id


def reply_stream(instance_id: str) -> str:
    """The stream where the engine answers one API instance."""
    return REPLY_STREAM_PREFIX + instance_id


def snapshot_key(log_id: str) -> str:
    """The key holding the snapshot taken after command ``log_id``."""
    return SNAPSHOT_KEY_PREFIX + log_id


def parse_id(entry_id: bytes | str) -> tuple[int, int]:
    """A stream id ``b"1700000000000-3"`` as ``(ms, sequence)``, which orders like the stream."""
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode()
    ms, _, sequence = entry_id.partition("-")
    return int(ms), int(sequence or 0)


def id_ms(entry_id: bytes) -> int:
    """The millisecond part of a stream id: the entry's timestamp."""
    return int(entry_id[: entry_id.index(b"-")])
