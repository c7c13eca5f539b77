"""What one engine batch sends out, as plain data: replies, events and channel updates.

The service fills a :class:`BatchOutput` while it applies a batch; the Redis side turns it into
one MULTI/EXEC (:mod:`exchange.engine.redis_log`; why, in :mod:`exchange.engine.service`). Keeping this free of I/O lets the shell's
tests check exactly what a batch would write.

Events travel as the codec's integer records (:func:`exchange.codec.event_message`): the
engine renders no decimal text; each consumer renders what it sends out, once.

Routing: every event goes to the events stream (the db writer's input) with the engine ``seq`` of
the command that caused it; depth and trade events also go to their market's channel, order and
balance events to their owner's channel, each channel receiving one message per batch that keeps
the events in order.
"""

from __future__ import annotations

from typing import Any

from exchange import codec
from exchange.models import DepthChanged, OrderUpdated, Outcome, TradeExecuted
from exchange.names import REPLY_TO_FIELD, REQUEST_ID_FIELD, market_channel, user_channel


class BatchOutput:
    """Everything one batch writes; ``last_command_id`` is None when it applied no command."""

    __slots__ = (
        "replies",
        "events",
        "channels",
        "last_command_id",
        "last_command_ms",
        "newest_ms",
        "heartbeat",
    )

    def __init__(self) -> None:
        # reply_to instance → {request id → codec-encoded reply}
        self.replies: dict[bytes, dict[bytes, bytes]] = {}
        self.events: list[dict[str, Any]] = []
        self.channels: dict[str, list[dict[str, Any]]] = {}
        self.last_command_id: bytes | None = None
        self.last_command_ms = 0
        self.newest_ms = 0  # newest entry (command or query) in the batch, Redis time
        self.heartbeat: dict[str, Any] | None = None

    def reply(self, fields: dict[bytes, bytes], body: bytes) -> None:
        """Queue ``body`` for the instance and request named in an entry's ``fields``."""
        reply_to = fields.get(REPLY_TO_FIELD)
        request_id = fields.get(REQUEST_ID_FIELD)
        if reply_to is not None and request_id is not None:
            replies = self.replies.get(reply_to)
            if replies is None:
                replies = self.replies[reply_to] = {}
            replies[request_id] = body

    def add(self, fields: dict[bytes, bytes], seq: int, outcome: Outcome) -> None:
        """Queue an applied command's reply and route its events."""
        self.reply(fields, codec.encode(outcome.reply))
        events = self.events
        channels = self.channels
        for event in outcome.events:
            data = codec.event_message(event, seq)
            events.append(data)
            kind = type(event)
            if kind is TradeExecuted or kind is DepthChanged:
                channel = market_channel(event.market)
            elif kind is OrderUpdated:
                channel = user_channel(event.order.user_id)
            else:
                channel = user_channel(event.user_id)
            queued = channels.get(channel)
            if queued is None:
                channels[channel] = [data]
            else:
                queued.append(data)

    @property
    def empty(self) -> bool:
        return not (self.replies or self.events or self.last_command_id or self.heartbeat)
