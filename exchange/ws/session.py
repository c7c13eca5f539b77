"""A WebSocket connection's life, whatever its surface: outbox, reader, sender and heartbeat.

Three tasks share one nursery: the reader (one :meth:`Session.handle` per client message), the
sender (drains the bounded outbox in one write) and the heartbeat. Whichever ends first ends
the connection; the ``finally`` leaves the hub and closes the WebSocket under a shielded
timeout, so teardown is always bounded. The hub delivers frames into the outbox and never
waits: a client too slow for it is closed with 1008.

A surface (:mod:`exchange.surfaces.native.ws_connection`,
:mod:`exchange.surfaces.backpack.ws_connection`) subclasses :class:`Session` with what is its
own: how a message is handled (:meth:`Session.handle`, answering its own errors), which queued
frames go out (:meth:`Session.outgoing`: the native depth gate, Backpack's contiguity check)
and how it leaves the hub (:meth:`Session.leave_all`).
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from exchange.markets import MarketConfig
from exchange.ws import keepalive
from exchange.ws.direct_write import send_frames
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
        self._scope = trio.CancelScope()

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
        """End the connection with ``code`` (first reason wins)."""
        if self.close_code is None:
            self.close_code = (code, reason)
            self.outbox.close()
            self._scope.cancel()

    # --- life ----------------------------------------------------------------------------------

    async def serve(self) -> None:
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._send_loop)
                    nursery.start_soon(self._heartbeat)
                    await self._read_loop()
                    nursery.cancel_scope.cancel()
        finally:
            self.leave_all()
            self.outbox.close()
            code, reason = self.close_code or (GOING_AWAY, "server shutting down")
            with trio.move_on_after(CLOSE_TIMEOUT_S) as cleanup:
                cleanup.shield = True
                await self.ws.aclose(code, reason)

    async def _read_loop(self) -> None:
        while True:
            try:
                message = await self.ws.get_message()
            except ConnectionClosed:
                return
            await self.handle(message)

    async def _send_loop(self) -> None:
        try:
            while True:
                self.sender_idle = True
                batches = await self.outbox.get_all()
                self.sender_idle = False
                out: list[bytes] = []
                self.outgoing(batches, out)
                if self.close_code is not None:
                    return
                if out:
                    await self.send(self.ws, b"".join(out))
        except ConnectionClosed:
            self._scope.cancel()
        finally:
            self.sender_idle = False

    async def _heartbeat(self) -> None:
        try:
            await keepalive.keep_alive(
                self.ws.ping,
                interval_s=self.limits.ping_interval_s,
                timeout_s=self.limits.pong_timeout_s,
            )
        except ConnectionClosed:
            return  # the reader ends the connection
        self.kick(GOING_AWAY, "ping timeout")
