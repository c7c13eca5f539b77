"""The request and response records every REST handler sees, free of any web framework.

A handler is a plain ``async def handler(api, req) -> data``: it takes the process's state
(:class:`~exchange.surfaces.state.Api`) and a :class:`Req`, and returns JSON-ready data (or an
:class:`Answer`) or raises. Keeping handlers framework-free keeps them easy to test and lets the
program answer them straight from ASGI (:class:`exchange.api.router.Router`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import orjson

if TYPE_CHECKING:
    from exchange.surfaces.state import Api

JSON = "application/json"


@attrs.frozen
class Req:
    """One request as handlers see it."""

    method: str
    target: str  # path and query exactly as sent (what a signature covers)
    headers: Mapping[str, str]  # names in lower case
    params: dict[str, str]  # query string, first value of each name
    body: bytes
    remote: str


@attrs.frozen
class Answer:
    """A finished response: status, body bytes and any extra headers."""

    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()


def json_answer(data: Any, status: int = 200) -> Answer:
    return Answer(status, orjson.dumps(data))


Handler = Callable[["Api", Req], Awaitable[Any]]
