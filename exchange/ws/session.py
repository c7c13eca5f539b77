"""A WebSocket connection's life, whatever its surface: outbox, reader, sender and heartbeat.

Three tasks: the reader (one :meth:`Session.handle` per client message), the sender (drains
the bounded outbox in one write) and the heartbeat. The client leaving ends all three. A kick
(:meth:`Session.kick`: a client too slow, a ping unanswered) stops the handling of messages
(what the client still sends is read and dropped), lets the sender finish the frame it is
writing, within ``Limits.close_timeout_s``, and close with the kick's code; a connection left
mid-frame is dropped without a close frame, which would read as garbage after half a frame.
The ``finally`` leaves the hub and closes under a shielded timeout, so teardown is always
bounded. The hub delivers frames into the outbox and never waits: a client too slow for it is
closed with 1008.

A surface (:mod:`exchange.surfaces.native.ws_connection`,
:mod:`exchange.surfaces.backpack.ws_connection`) subclasses :class:`Session` with what is its
own: how a message is handled (:meth:`Session.handle`, answering its own errors), which queued
frames go out (:meth:`Session.outgoing`: the native depth gate, Backpack's contiguity check)
and how it leaves the hub (:meth:`Session.leave_all`).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import suppress

import attrs
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from exchange.markets import MarketConfig
from exchange.ws import keepalive
from exchange.ws.direct_write import abort, send_frames
from exchange.ws.frames import Frame, Outbox, send_messages
from exchange.ws.hub import Hub

CLOSE_TIMEOUT_S = 2.0
SLOW_CLIENT = 1008
GOING_AWAY = 1001


@attrs.frozen
class Limits:
    outbox_batches: int = 1024
    ping_interval_s: float = keepalive.PING_INTERVAL_S
    pong_timeout_s: float = keepalive.PONG_TIMEOUT_S
    # How long a kicked client has to take the frame under way and the close frame.
    close_timeout_s: float = CLOSE_TIMEOUT_S
    # Write pre-framed bytes to the socket (exchange.ws.direct_write); False: through
    # trio-websocket's public send_message (WS_WRITE=public, to measure the difference).
    direct_write: bool = True


class Session:
    """One connection: :meth:`serve` runs it; the hub calls :meth:`deliver` (never blocks)."""

    def __init__(self, ws: WebSocketConnection, hub: Hub, config: MarketConfig, limits: Limits):
        self.ws = ws
        self.hub = hub
        self.config = config
        self.limits = limits
        self.outbox = Outbox(limits.outbox_batches)
        self.send = send_frames if limits.direct_write else send_messages
        self.close_code: tuple[int, str] | None = None
        self.sender_idle = False  # waiting on an empty outbox: nothing is being written
        # Part of a frame is on the wire: a close frame now would read as garbage.
        self.mid_frame = False
        self._scope = trio.CancelScope()  # handling client messages
        self._heartbeat_scope = trio.CancelScope()
        self._send_scope = trio.CancelScope()

    # --- what a surface implements -------------------------------------------------------------

    async def handle(self, message: str | bytes) -> None:
        """Act on one client message, answering it (errors included) through :meth:`deliver`."""
        raise NotImplementedError

    def outgoing(self, batches: Iterable[tuple[Frame, ...]], out: list[bytes]) -> None:
        """Append the bytes of the queued frames that go out; may :meth:`kick` instead."""
        for frames in batches:
            out.extend(frame.data for frame in frames)

    def leave_all(self) -> None:
        """Unregister from every hub topic and release every channel held."""
        raise NotImplementedError

    # --- called by the hub and the surface -----------------------------------------------------

    def deliver(self, frames: tuple[Frame, ...]) -> None:
        if not self.outbox.put_nowait(frames):
            self.kick(SLOW_CLIENT, "client too slow")

    def kick(self, code: int, reason: str) -> None:
        """End the connection with ``code`` (first reason wins): stop handling messages, let
        the sender finish its frame, then close (see :meth:`_send_loop`)."""
        if self.close_code is None:
            self.close_code = (code, reason)
            self._scope.cancel()
            self._heartbeat_scope.cancel()
            # An idle sender mid-frame: the outbox starts with the rest of that frame.
            self.outbox.close(keep_first=self.mid_frame and self.sender_idle)
            self._send_scope.deadline = trio.current_time() + self.limits.close_timeout_s

    # --- life ----------------------------------------------------------------------------------

    async def serve(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._send_loop)
                nursery.start_soon(self._heartbeat)
                await self._read_loop()
                if self.close_code is None:  # the client left
                    nursery.cancel_scope.cancel()
        finally:
            self.leave_all()
            self.outbox.close()
            with trio.move_on_after(self.limits.close_timeout_s) as cleanup:
                cleanup.shield = True
                await self._close()

    async def _close(self) -> None:
        """The close handshake with our code, or a plain drop when a frame is half written (a
        close frame after it would read as garbage). Does nothing once closed."""
        if self.mid_frame:
            await abort(self.ws)
        else:
            code, reason = self.close_code or (GOING_AWAY, "server shutting down")
            await self.ws.aclose(code, reason)

    async def _read_loop(self) -> None:
        with self._scope:  # cancelled by a kick
            while True:
                try:
                    message = await self.ws.get_message()
                except ConnectionClosed:
                    return
                await self.handle(message)
        # Closing: read and drop what the client still sends. Unread, it would stall the
        # client's sends and our close frame behind them, and closing the socket over unread
        # bytes resets the connection, so the client would never see the close code (a client
        # too slow to read is usually still sending).
        with suppress(ConnectionClosed):
            while True:
                await self.ws.get_message()

    async def _send_loop(self) -> None:
        """Write what is queued; after a kick, finish the frame under way (within
        ``Limits.close_timeout_s``) and close the connection."""
        with self._send_scope:
            try:
                while True:
                    self.sender_idle = True
                    batches = await self.outbox.get_all()
                    self.sender_idle = False
                    if not batches:  # closed
                        break
                    out: list[bytes] = []
                    self.outgoing(batches, out)
                    if out and (self.close_code is None or self.mid_frame):
                        self.mid_frame = True
                        await self.send(self.ws, b"".join(out))
                        self.mid_frame = False
            except ConnectionClosed:
                return  # the reader sees it too, and ends the connection
            finally:
                self.sender_idle = False
        if self.close_code is not None:
            with trio.move_on_after(self.limits.close_timeout_s):
                await self._close()

    async def _heartbeat(self) -> None:
        with self._heartbeat_scope:
            try:
                await keepalive.keep_alive(
                    self.ws.ping,
                    interval_s=self.limits.ping_interval_s,
                    timeout_s=self.limits.pong_timeout_s,
                )
            except ConnectionClosed:
                return  # the reader ends the connection
            self.kick(GOING_AWAY, "ping timeout")
