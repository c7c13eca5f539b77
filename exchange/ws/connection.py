"""One client connection: requests in, frames out, heartbeat, and the depth gate.

Three tasks share one nursery: the reader (requests), the sender (drains the outbox in one write)
and the heartbeat. Whichever ends first ends the connection; the ``finally`` unregisters from
the hub and closes the WebSocket under a shielded timeout, so teardown is always bounded.

The depth gate keeps each ``depth@M`` stream exact for this client: diffs that arrive before the
snapshot wait in a buffer; the snapshot goes out, diffs it already contains are dropped, and from
then on each diff must start at the previous ``last_update_id + 1``. A gap (a lost pub/sub
message) sends a fresh snapshot instead of a wrong diff.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import attrs
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from exchange.bus import market_channel, user_channel
from exchange.errors import ErrorCode
from exchange.markets import MarketConfig
from exchange.ws import keepalive
from exchange.ws.auth import Authenticator
from exchange.ws.direct_write import raw_socket, send_frames, try_send_nowait
from exchange.ws.frames import DepthSnapshot, Frame, Outbox, send_messages
from exchange.ws.hub import Hub, private_topic
from exchange.ws.protocol import (
    ProtocolError,
    Request,
    Stream,
    error_frame,
    parse_request,
    parse_stream,
    result_frame,
)

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 2.0
SLOW_CLIENT = 1008
GOING_AWAY = 1001
# Diffs held while a snapshot is fetched; more means the engine is not answering.
MAX_GATE_BUFFER = 10_000


@attrs.frozen
class Limits:
    outbox_batches: int = 1024
    ping_interval_s: float = keepalive.PING_INTERVAL_S
    pong_timeout_s: float = keepalive.PONG_TIMEOUT_S
    # Write pre-framed bytes to the socket (exchange.ws.direct_write); False: through
    # trio-websocket's public send_message (WS_WRITE=public, to measure the difference).
    direct_write: bool = True


@attrs.define
class _DepthGate:
    last_id: int | None = None  # None: waiting for a snapshot
    buffer: list[Frame] = attrs.Factory(list)


class Session:
    """A connection's life, whatever its surface: the hub delivers frames into a bounded outbox
    (a client too slow for it is closed with 1008), and :meth:`serve` runs the surface's reader
    and sender beside the heartbeat until one ends, then leaves the hub and closes the socket
    under a shielded timeout. Surfaces implement ``_read_loop``, ``_send_loop``, ``_leave_all``.
    """

    def __init__(self, ws: WebSocketConnection, hub: Hub, config: MarketConfig, limits: Limits):
        self.ws = ws
        self.hub = hub
        self.config = config
        self.limits = limits
        self.outbox = Outbox(limits.outbox_batches)
        self.send = send_frames if limits.direct_write else send_messages
        self.close_code: tuple[int, str] | None = None
        self._scope = trio.CancelScope()

    # --- called by the hub (never blocks) -----------------------------------------------------

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
            self._leave_all()
            self.outbox.close()
            code, reason = self.close_code or (GOING_AWAY, "server shutting down")
            with trio.move_on_after(CLOSE_TIMEOUT_S) as cleanup:
                cleanup.shield = True
                await self.ws.aclose(code, reason)

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

    async def _read_loop(self) -> None:
        raise NotImplementedError

    async def _send_loop(self) -> None:
        raise NotImplementedError

    def _leave_all(self) -> None:
        raise NotImplementedError


class Client(Session):
    """A native ``/`` or ``/ws`` connection: the contract's requests, streams and depth gate."""

    def __init__(
        self,
        ws: WebSocketConnection,
        hub: Hub,
        config: MarketConfig,
        authenticator: Authenticator,
        limits: Limits,
    ) -> None:
        super().__init__(ws, hub, config, limits)
        self.authenticator = authenticator
        self.user_id: str | None = None
        self.streams: dict[str, tuple[str, str]] = {}  # stream name → (topic, channel)
        self.gates: dict[str, _DepthGate] = {}
        self._sender_idle = False
        self._socket = raw_socket(ws) if ws is not None and limits.direct_write else None

    def deliver(self, frames: tuple[Frame, ...]) -> None:
        if self._sender_idle and self._socket is not None and not self.outbox:
            # Fast path: nothing queued, nobody writing: send now, queue only the rest.
            out: list[bytes] = []
            self._gate_all((frames,), out)
            if not out:
                return
            data = b"".join(out)
            try:
                sent = try_send_nowait(self.ws, self._socket, data)
            except OSError:
                self.kick(GOING_AWAY, "connection broken")
                return
            if sent == len(data):
                return
            frames = (Frame(data[sent:]),)  # already gated: raw bytes from here on
        super().deliver(frames)

    def _leave_all(self) -> None:
        for topic, channel in self.streams.values():
            self.hub.unregister(self, topic)
            self.hub.release(channel)
        self.streams.clear()
        self.gates.clear()

    async def _send_loop(self) -> None:
        try:
            while True:
                self._sender_idle = True
                batches = await self.outbox.get_all()
                self._sender_idle = False
                out: list[bytes] = []
                self._gate_all(batches, out)
                if out:
                    await self.send(self.ws, b"".join(out))
        except ConnectionClosed:
            self._scope.cancel()
        finally:
            self._sender_idle = False

    def _gate_all(self, batches: Iterable[tuple[Frame, ...]], out: list[bytes]) -> None:
        for frames in batches:
            for frame in frames:
                if frame.market is None:
                    out.append(frame.data)
                else:
                    self._through_gate(frame, out)

    def _through_gate(self, frame: Frame, out: list[bytes]) -> None:
        gate = self.gates.get(frame.market)  # type: ignore[arg-type]
        if gate is None:  # unsubscribed meanwhile
            return
        if isinstance(frame, DepthSnapshot):
            if gate.last_id is not None:  # an older request's answer; we are in sync
                return
            out.append(frame.data)
            gate.last_id = frame.last_id
            held, gate.buffer = gate.buffer, []
            for diff in held:
                self._through_gate(diff, out)
            return
        if gate.last_id is None:
            gate.buffer.append(frame)
            if len(gate.buffer) > MAX_GATE_BUFFER:
                self.kick(SLOW_CLIENT, "depth snapshot unavailable")
            return
        if frame.last_id <= gate.last_id:
            return  # already in the snapshot
        if frame.first_id <= gate.last_id + 1:
            if frame.parts is not None and frame.first_id <= gate.last_id:
                # A merged run the snapshot reaches into: only its diffs from there on.
                for part in frame.parts:
                    self._through_gate(part, out)
                return
            out.append(frame.data)
            gate.last_id = frame.last_id
            return
        log.warning("depth gap on %s (%s → %s); re-snapshot", frame.market, gate.last_id, frame)
        gate.last_id = None
        gate.buffer = [frame]
        self.hub.request_snapshot(frame.market, self)  # type: ignore[arg-type]

    # --- requests ------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        while True:
            try:
                raw = await self.ws.get_message()
            except ConnectionClosed:
                return
            try:
                await self._handle(parse_request(raw))
            except ProtocolError as exc:
                self._reply(error_frame(exc.request_id, exc.code.value, exc.message))

    def _reply(self, payload: bytes) -> None:
        self.deliver((Frame.of(payload),))

    async def _handle(self, request: Request) -> None:
        if request.method == "AUTH":
            await self._auth(request)
            return
        streams = [parse_stream(name, self.config, request.id) for name in request.params]
        if request.method == "SUBSCRIBE":
            await self._subscribe(request.id, streams)
        else:
            for stream in streams:
                self._unsubscribe(stream)
            self._reply(result_frame(request.id))

    async def _auth(self, request: Request) -> None:
        user_id = await self.authenticator.authenticate(request.params, request.id)
        if self.user_id is not None and user_id != self.user_id:
            raise ProtocolError(
                ErrorCode.INVALID_REQUEST, "already authenticated as another user", request.id
            )
        self.user_id = user_id
        self._reply(result_frame(request.id))

    def _topic(self, stream: Stream) -> tuple[str, str]:
        if stream.private:
            assert self.user_id is not None
            return private_topic(stream.name, self.user_id), user_channel(self.user_id)
        assert stream.market is not None
        return stream.name, market_channel(stream.market)

    async def _subscribe(self, request_id: Any, streams: list[Stream]) -> None:
        if any(s.private for s in streams) and self.user_id is None:
            raise ProtocolError(
                ErrorCode.UNAUTHORIZED, "AUTH before subscribing to private streams", request_id
            )
        fresh = {s.name: s for s in streams if s.name not in self.streams}
        held: list[tuple[Stream, str, str]] = []
        try:
            for stream in fresh.values():
                topic, channel = self._topic(stream)
                # Confirmed before the ack; the depth snapshot is taken after registration, so
                # every diff newer than the snapshot reaches this client.
                await self.hub.hold(channel)
                held.append((stream, topic, channel))
        except BaseException:
            for _, _, channel in held:
                self.hub.release(channel)
            raise
        self._reply(result_frame(request_id))
        for stream, topic, channel in held:
            self.streams[stream.name] = (topic, channel)
            self.hub.register(self, topic)
            if stream.kind == "depth":
                assert stream.market is not None
                self.gates[stream.market] = _DepthGate()
                self.hub.request_snapshot(stream.market, self)

    def _unsubscribe(self, stream: Stream) -> None:
        entry = self.streams.pop(stream.name, None)
        if entry is None:
            return
        topic, channel = entry
        self.hub.unregister(self, topic)
        self.hub.release(channel)
        if stream.kind == "depth":
            self.gates.pop(stream.market, None)  # type: ignore[arg-type]
