"""Pre-framed server messages and the bounded per-client outbox.

Fan-out cost is per client, so the server does the per-message work once: each event is
serialised to JSON once and wrapped in a complete WebSocket text frame once (server frames are
unmasked, so the bytes are the same for every client). A client's sender then writes everything
waiting in its outbox with one ``send_all``: one syscall for many frames, one frame per message as
the contract says. Going through ``WebSocketConnection.send_message`` instead would re-frame
each message per client and make one syscall per message; at 1,000 clients that is the whole
CPU budget.

How the bytes reach the socket is :mod:`exchange.ws.direct_write`'s (the one module that knows
trio-websocket's internals) or, through the public API, :func:`send_messages`.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterator

import trio
from trio_websocket import WebSocketConnection

_FIN_TEXT = 0x81


def text_payloads(data: bytes) -> Iterator[bytes]:
    """The payloads of the frames :func:`text_frame` made, joined in ``data``, in order."""
    offset, end = 0, len(data)
    while offset < end:
        size = data[offset + 1]
        if size == 126:
            (size,) = struct.unpack_from("!H", data, offset + 2)
            offset += 4
        elif size == 127:
            (size,) = struct.unpack_from("!Q", data, offset + 2)
            offset += 10
        else:
            offset += 2
        yield data[offset : offset + size]
        offset += size


async def send_messages(ws: WebSocketConnection, data: bytes) -> None:
    """Write pre-framed bytes through trio-websocket's public API: one ``send_message`` per
    frame, re-framed by wsproto (the measured alternative to :mod:`exchange.ws.direct_write`).

    Raises:
        ConnectionClosed: the connection is closing or closed.
    """
    for payload in text_payloads(data):
        await ws.send_message(payload.decode())


def text_frame(payload: bytes) -> bytes:
    """A complete, unmasked, unfragmented RFC 6455 text frame carrying ``payload`` (UTF-8)."""
    size = len(payload)
    if size < 126:
        return bytes((_FIN_TEXT, size)) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", _FIN_TEXT, 126, size) + payload
    return struct.pack("!BBQ", _FIN_TEXT, 127, size) + payload


class Frame:
    """One framed server message, or several merged (see :func:`merged`). Depth diffs carry
    their market and update ids; a merged run of diffs also keeps its ``parts``."""

    __slots__ = ("data", "first_id", "last_id", "market", "parts")

    def __init__(
        self,
        data: bytes,
        market: str | None = None,
        first_id: int = 0,
        last_id: int = 0,
        parts: tuple[Frame, ...] | None = None,
    ) -> None:
        self.data = data
        self.market = market
        self.first_id = first_id
        self.last_id = last_id
        self.parts = parts

    @classmethod
    def of(cls, payload: bytes, **depth) -> Frame:
        return cls(text_frame(payload), **depth)


def merged(frames: tuple[Frame, ...]) -> tuple[Frame, ...]:
    """``frames`` as one Frame whose bytes are theirs in order, when they can travel as one.

    A topic's frames of one round go to every subscriber, and a client's cost is per Frame it
    handles, so they are joined once here rather than per client. On the wire nothing changes:
    the bytes are still one WebSocket frame per message. Plain frames always merge; depth diffs
    merge when they are of one market and chain without a gap (the merged Frame spans their
    update ids and keeps them as ``parts`` for a client whose snapshot falls inside the run).
    Anything else (a snapshot, a gap, mixed kinds) is returned as it was.
    """
    if len(frames) < 2:
        return frames
    if all(frame.market is None for frame in frames):
        return (Frame(b"".join(frame.data for frame in frames)),)
    first = previous = frames[0]
    for frame in frames:
        if type(frame) is not Frame or frame.market is None or frame.market != first.market:
            return frames
        if frame is not first and frame.first_id != previous.last_id + 1:
            return frames
        previous = frame
    data = b"".join(frame.data for frame in frames)
    return (Frame(data, first.market, first.first_id, previous.last_id, frames),)


class DepthSnapshot(Frame):
    """A depth snapshot frame; ``last_id`` is its ``last_update_id``."""

    __slots__ = ()


class Outbox:
    """A bounded FIFO of frame batches with a single consumer.

    ``put_nowait`` never blocks the fan-out loop: it returns False when the client is
    ``limit`` batches behind, and the caller disconnects it. A plain deque plus an Event is
    several times cheaper than a memory channel on this path, and the consumer takes everything
    at once.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: deque[tuple[Frame, ...]] = deque()
        self._ready = trio.Event()
        self.closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put_nowait(self, frames: tuple[Frame, ...]) -> bool:
        if self.closed:
            return True
        if len(self._items) >= self.limit:
            return False
        self._items.append(frames)
        self._ready.set()
        return True

    async def get_all(self) -> list[tuple[Frame, ...]]:
        """Wait until something is queued; take all of it (empty once closed and drained)."""
        while not self._items and not self.closed:
            self._ready = trio.Event()
            await self._ready.wait()
        items = list(self._items)
        self._items.clear()
        return items

    def close(self, *, keep_first: bool = False) -> None:
        """Take nothing more and drop what is queued, but the first batch with ``keep_first``
        (the rest of a frame already half written)."""
        self.closed = True
        first = self._items[0] if keep_first and self._items else None
        self._items.clear()
        if first is not None:
            self._items.append(first)
        self._ready.set()
