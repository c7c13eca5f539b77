"""Batch placement, the same on every surface: each order placed or refused on its own.

A batch is answered item by item in its own order. An item the surface cannot parse is refused
in place and never sent; the rest go to the engine in one round trip, and each reply is rendered
(or, when the engine rejected it or the surface refuses what came back, worded as the surface's
error object). The rate limit is charged once for all before anything is sent, so a batch that
would overdraw a bucket is refused whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from exchange.errors import RequestError
from exchange.models import OrderView, PlaceOrder, Rejection
from exchange.surfaces.backend import Backend


async def place_batch(
    backend: Backend,
    items: Sequence[Any],
    *,
    parse: Callable[[Any], PlaceOrder],
    charge: Callable[[list[PlaceOrder]], None],
    render: Callable[[OrderView], Any],
    refused: Callable[[RequestError], Any],
) -> list[Any]:
    """``items`` placed: ``parse`` builds a command or raises RequestError, ``charge`` takes the
    rate limit for the parsed commands, ``render`` answers a placed order (raising RequestError
    to refuse it) and ``refused`` words a refusal."""
    results: list[Any] = [None] * len(items)
    commands: list[PlaceOrder] = []
    slots: list[int] = []
    for index, item in enumerate(items):
        try:
            commands.append(parse(item))
            slots.append(index)
        except RequestError as exc:
            results[index] = refused(exc)
    charge(commands)
    for index, reply in zip(slots, await backend.place_many(commands), strict=True):
        try:
            if isinstance(reply, Rejection):
                raise RequestError(reply.code, reply.message)
            results[index] = render(reply)
        except RequestError as exc:
            results[index] = refused(exc)
    return results
