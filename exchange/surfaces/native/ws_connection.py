"""A native ``/`` or ``/ws`` connection: the contract's requests, streams and the depth gate.

The connection's life (outbox, reader, sender, heartbeat, teardown) is
:class:`exchange.ws.session.Session`'s; this module is what the native surface adds to it.

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
from trio_websocket import WebSocketConnection

from exchange import gateway
from exchange.errors import ErrorCode, RequestError
from exchange.markets import MarketConfig
from exchange.names import market_channel, user_channel
from exchange.surfaces.native import ws_trading
from exchange.surfaces.native.auth import Caller
from exchange.surfaces.native.ws_auth import Authenticator
from exchange.surfaces.native.ws_protocol import (
    ProtocolError,
    Request,
    Stream,
    error_frame,
    parse_request,
    parse_stream,
    result_frame,
)
from exchange.surfaces.state import Api
from exchange.ws.direct_write import raw_socket, try_send_nowait
from exchange.ws.frames import DepthSnapshot, Frame
from exchange.ws.hub import Hub, private_topic
from exchange.ws.session import GOING_AWAY, SLOW_CLIENT, Limits, Session

log = logging.getLogger(__name__)

# Diffs held while a snapshot is fetched; more means the engine is not answering.
MAX_GATE_BUFFER = 10_000
# Trading requests of one connection awaiting their replies; past it the reader waits (and TCP
# pushes back on the client) rather than holding more.
MAX_IN_FLIGHT = 1024


@attrs.define
class _DepthGate:
    last_id: int | None = None  # None: waiting for a snapshot
    buffer: list[Frame] = attrs.Factory(list)


class Client(Session):
    """A native connection: the contract's requests and streams, each depth@M gated."""

    def __init__(
        self,
        ws: WebSocketConnection,
        hub: Hub,
        config: MarketConfig,
        authenticator: Authenticator,
        limits: Limits,
        api: Api | None = None,
    ) -> None:
        super().__init__(ws, hub, config, limits)
        self.authenticator = authenticator
        self.api = api  # None: a server without trading (tests of the streams alone)
        self.user_id: str | None = None
        self.caller: Caller | None = None
        self._in_flight = trio.Semaphore(MAX_IN_FLIGHT)
        self._requests: trio.Nursery | None = None
        self.streams: dict[str, tuple[str, str]] = {}  # stream name → (topic, channel)
        self.gates: dict[str, _DepthGate] = {}
        self._socket = raw_socket(ws) if ws is not None and limits.direct_write else None

    def deliver(self, frames: tuple[Frame, ...]) -> None:
        if (
            self.sender_idle
            and self._socket is not None
            and not self.outbox.closed
            and not self.outbox
        ):
            # Fast path: nothing queued, nobody writing: send now, queue only the rest.
            out: list[bytes] = []
            self.outgoing((frames,), out)
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
            self.mid_frame = bool(sent)  # until the sender has written the rest
            frames = (Frame(data[sent:]),)  # already gated: raw bytes from here on
        super().deliver(frames)

    def leave_all(self) -> None:
        for topic, channel in self.streams.values():
            self.hub.unregister(self, topic)
            self.hub.release(channel)
        self.streams.clear()
        self.gates.clear()

    def outgoing(self, batches: Iterable[tuple[Frame, ...]], out: list[bytes]) -> None:
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

    async def serve(self) -> None:
        # Trading requests run in a nursery outside the connection's cancel scope: one the
        # server has read is carried out to its end even when the connection closes meanwhile
        # (1008, the client leaving), so it is never half sent, nor applied twice.
        async with trio.open_nursery() as self._requests:
            await super().serve()

    async def handle(self, message: str | bytes) -> None:
        try:
            request = parse_request(message)
            if request.method in ws_trading.METHODS:
                await self._trade(message, request)
            else:
                await self._handle(request)
        except ProtocolError as exc:
            self._reply(error_frame(exc.request_id, exc.code.value, exc.message))

    async def _trade(self, message: str | bytes, request: Request) -> None:
        """Start ``request`` and return once its command is queued to the engine (or it was
        refused): the next request of this connection is then queued after it."""
        try:
            ws_trading.check_id(request.id)
            if self.api is None:
                raise RequestError(ErrorCode.SERVICE_UNAVAILABLE, "trading is not served here")
            if self.caller is None:
                raise RequestError(ErrorCode.UNAUTHORIZED, "AUTH before trading")
        except RequestError as exc:
            self._reply(ws_trading.failure_frame(request.id, exc))
            return
        params = ws_trading.exact_params(message, request.params)
        await self._in_flight.acquire()
        assert self._requests is not None
        queued = trio.Event()
        self._requests.start_soon(self._run_trade, request.id, request.method, params, queued)
        await queued.wait()

    async def _run_trade(
        self, request_id: Any, method: str, params: Any, queued: trio.Event
    ) -> None:
        gateway.on_queued.set(queued.set)
        assert self.api is not None and self.caller is not None
        try:
            result = await ws_trading.call(self.api, self.caller, method, params)
            frame = ws_trading.result_frame(request_id, result)
        except Exception as exc:  # noqa: BLE001 - every failure is answered as REST would
            frame = ws_trading.failure_frame(request_id, exc)
        finally:
            self._in_flight.release()
            queued.set()  # refused before it reached the gateway: the next may go
        if self.close_code is None:
            self._reply(frame)

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
        # The rate-limit bucket its REST requests use: the API key's, or the dev user's.
        key = request.params.get("api_key") if self.authenticator.mode == "apikey" else None
        self.caller = Caller(user_id, f"key:{key}" if key else f"user:{user_id}")
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
