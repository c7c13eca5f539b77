"""Pre-framed bytes written straight to a trio-websocket connection's socket.

Fan-out cost is per client: the hub frames each message once (:mod:`exchange.ws.frames`) and a
client's sender writes everything waiting in its outbox with one ``send_all``, or, when nothing
is queued, with one non-blocking ``send`` from the fan-out loop itself (no task wake-up).
trio-websocket's public ``send_message`` re-frames every message per client and costs a syscall
and a lock round per message; at 1,000 clients that is the whole CPU budget. The public path is
kept beside this one (``WS_WRITE=public``, :func:`exchange.ws.frames.send_messages`) so the two
can be measured against each other (``benchmarks/bench_ws.py --public-write``).

This is the one module that touches trio-websocket's internals, so it is written against one
version (:data:`WRITTEN_AGAINST`, pinned in ``pyproject.toml``) and relies on exactly:

- ``WebSocketConnection._stream`` (the ``trio.abc.Stream`` under it; a ``trio.SocketStream``
  on plain TCP, whose ``socket._sock`` is the stdlib socket) and ``_stream_lock`` (the
  ``trio.Lock`` its own writes take, so ours never interleave with its pings, pongs and close
  frames);
- ``_stream.aclose()`` to drop a connection whose last frame is half written (:func:`abort`);
- ``_close_reason`` (None while open), ``_wsproto.state`` (wsproto's ``ConnectionState``) and
  ``_abort_web_socket()`` (what it does itself when the stream breaks).

:func:`incompatibility` says why the installed version cannot be used (the server then writes
through the public API); ``tests/ws/test_ws_direct_write.py`` fails on such an upgrade.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import socket

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection
from wsproto.connection import ConnectionState

WRITTEN_AGAINST = "0.12.2"
_CONNECTION_ATTRIBUTES = ("_stream", "_stream_lock", "_close_reason", "_wsproto")


def incompatibility() -> str | None:
    """None when the installed trio-websocket is the one this module was written against, else
    what differs (checked on the class: the attributes are set in ``__init__``)."""
    installed = importlib.metadata.version("trio-websocket")
    if installed != WRITTEN_AGAINST:
        return f"trio-websocket {installed} installed, direct write written for {WRITTEN_AGAINST}"
    init = inspect.getsource(WebSocketConnection.__init__)
    missing = [n for n in _CONNECTION_ATTRIBUTES if not re.search(rf"self\.{n}\b\s*[:=]", init)]
    if not inspect.iscoroutinefunction(getattr(WebSocketConnection, "_abort_web_socket", None)):
        missing.append("_abort_web_socket")
    if missing:
        return f"trio-websocket {installed} lacks {', '.join(missing)}"
    return None


def raw_socket(ws: WebSocketConnection) -> socket.socket | None:
    """The connection's non-blocking OS socket, when it runs on a plain TCP stream."""
    stream = ws._stream
    if isinstance(stream, trio.SocketStream):
        return stream.socket._sock  # type: ignore[attr-defined]
    return None


def try_send_nowait(ws: WebSocketConnection, sock: socket.socket, data: bytes) -> int:
    """Write what the kernel takes right now, without a task switch; returns bytes written.

    Only when nothing else is writing (the send lock is free) and the connection is open;
    otherwise 0 and the caller queues. This is the fan-out fast path: a client that keeps up
    costs one ``send`` syscall per engine batch and no task wake-up at all.

    Raises:
        OSError: the connection is broken.
    """
    if (
        ws._stream_lock.locked()
        or ws._close_reason is not None
        or ws._wsproto.state is not ConnectionState.OPEN
    ):
        return 0
    try:
        return sock.send(data)
    except BlockingIOError:
        return 0


async def abort(ws: WebSocketConnection) -> None:
    """End the connection without a close frame, when a frame is half written: a close frame
    after it would read as garbage. The client sees the connection drop (1006)."""
    await ws._stream.aclose()


async def send_frames(ws: WebSocketConnection, data: bytes) -> None:
    """Write pre-framed bytes to the client.

    Raises:
        ConnectionClosed: the connection is closing or closed.
    """
    async with ws._stream_lock:
        # Checked under the lock: a close frame sent while we waited must be the last frame.
        if ws._close_reason is not None or ws._wsproto.state is not ConnectionState.OPEN:
            raise ConnectionClosed(ws._close_reason)
        try:
            await ws._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await ws._abort_web_socket()
            raise ConnectionClosed(ws._close_reason) from None
