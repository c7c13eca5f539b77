"""Helpers shared by the engine-service tests: a reference engine fed the log, raw log writes."""

from __future__ import annotations

from typing import Any

import attrs
import orjson
import redis

from exchange import codec
from exchange.engine.core import Engine
from exchange.markets import MarketConfig
from exchange.models import Command, Outcome
from exchange.names import BODY_FIELD, COMMAND_STREAM, EVENT_STREAM, EVENTS_FIELD, id_ms


@attrs.define
class Reference:
    """An in-process engine fed a log exactly as the service feeds it (same seq and ts rules)."""

    engine: Engine
    outcomes: dict[bytes, tuple[Command, Outcome, int]]  # entry id → (command, outcome, seq)

    def events_json(self) -> list[dict[str, Any]]:
        """Every event as on the events stream (after a JSON round trip), in log order."""
        messages = [
            codec.event_message(event, seq)
            for _command, outcome, seq in self.outcomes.values()
            for event in outcome.events
        ]
        return orjson.loads(orjson.dumps(messages))


def reference_from_log(config: MarketConfig, entries: list[tuple[bytes, dict]]) -> Reference:
    engine = Engine(config)
    outcomes = {}
    for entry_id, fields in entries:
        try:
            command = codec.decode(fields[BODY_FIELD])
        except Exception:
            continue
        if not isinstance(command, Command):
            continue
        seq = engine.seq + 1
        outcomes[entry_id] = (command, engine.apply(command, seq=seq, ts=id_ms(entry_id)), seq)
    return Reference(engine, outcomes)


def read_log(client: redis.Redis) -> list[tuple[bytes, dict]]:
    return client.xrange(COMMAND_STREAM)


def read_events(client: redis.Redis) -> list[dict[str, Any]]:
    """Every event on the events stream, in order."""
    return [
        event
        for _id, fields in client.xrange(EVENT_STREAM)
        for event in orjson.loads(fields[EVENTS_FIELD])
    ]


def push_commands(client: redis.Redis, commands: list[Command]) -> list[bytes]:
    """XADD commands that nobody waits for; returns their ids."""
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.xadd(COMMAND_STREAM, {BODY_FIELD: codec.encode(command)})
    return pipe.execute()
