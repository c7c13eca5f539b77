"""Each engine event in the contract's words, rendered once per pub/sub message for every ws
surface that reads it.

Both WebSocket surfaces start from :func:`exchange.views.event_json` (the native frames carry its
fields as they are, Backpack's translate them), and the hub hands every surface the same list of
decoded records for a message. :class:`EventJson`, shared by the surfaces of one server, renders
each record of that list the first time one asks and gives the others the same dict, so a trade
that both a native and a ``/backpack`` client follow is formatted once. The dicts are read-only
to their users.
"""

from __future__ import annotations

from typing import Any

from exchange.markets import MarketConfig
from exchange.models import Event
from exchange.views import event_json


class EventJson:
    """``event_json`` of the current message's events, memoised (see the module docstring)."""

    def __init__(self, config: MarketConfig) -> None:
        self.config = config
        # The message being rendered (kept alive, so identities stay unique) and its dicts.
        self._events: list[Event] | None = None
        self._rendered: dict[int, dict[str, Any]] = {}

    def __call__(self, events: list[Event], event: Event) -> dict[str, Any]:
        """The contract's JSON of ``event``, one of the message ``events``."""
        if events is not self._events:
            self._events, self._rendered = events, {}
        key = id(event)
        rendered = self._rendered.get(key)
        if rendered is None:
            rendered = self._rendered[key] = event_json(self.config, event)
        return rendered
